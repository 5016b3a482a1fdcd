#!/usr/bin/env bash
# Chat over rudp between two network namespaces joined by a veth pair.
#
#   sudo examples/netns_chat.sh [--loss PCT] [--iptables] [--loop auto|asyncio|uvloop]
#                               [--timeout SECS] [--keep-logs]
#
# Creates namespaces rudp-a-PID (chat server, 10.231.N.1/30) and rudp-b-PID
# (two clients, alice and bob, 10.231.N.2/30), linked by a veth pair that
# exists only inside them; nothing is configured or sent outside them. Each
# client's stdin is a small script: wait until the other is in the room, send
# a message, /who, a goodbye, wait for the other's goodbye, then EOF (the
# client half-closes and exits when the server closes). The run succeeds when
# both clients saw each other's messages and both /who lists, both exited 0,
# and the server logged both leaving.
#
# --loss PCT drops PCT% of the packets in each direction of the link, with
#   `tc qdisc ... netem loss PCT%`; where the kernel has no netem (sch_netem),
#   with a classic-BPF random filter steering PCT% of IP packets into a
#   blackhole qdisc under htb. --iptables uses
#   `iptables -m statistic --mode random --probability` instead, if iptables
#   is installed (otherwise the tc methods).
#
# Exit status: 0 success, 1 the chat check failed, 2 usage error,
# 77 cannot run here (not root, no `ip netns`, no way to drop packets ...).
# Everything is torn down on exit (trap EXIT): processes killed, namespaces
# (and with them the veth pair) deleted. Every process runs under `timeout`.

set -u -o pipefail

LOSS=0
USE_IPTABLES=0
LOOP=auto
TIMEOUT=40
KEEP_LOGS=0
PORT=9000

usage() { sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --loss) [ $# -ge 2 ] || usage; LOSS=$2; shift 2 ;;
        --loss=*) LOSS=${1#--loss=}; shift ;;
        --iptables) USE_IPTABLES=1; shift ;;
        --loop) [ $# -ge 2 ] || usage; LOOP=$2; shift 2 ;;
        --loop=*) LOOP=${1#--loop=}; shift ;;
        --timeout) [ $# -ge 2 ] || usage; TIMEOUT=$2; shift 2 ;;
        --timeout=*) TIMEOUT=${1#--timeout=}; shift ;;
        --keep-logs) KEEP_LOGS=1; shift ;;
        -h|--help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage ;;
    esac
done

if ! [[ $LOSS =~ ^[0-9]+([.][0-9]+)?$ ]] || ! awk -v p="$LOSS" 'BEGIN { exit !(p >= 0 && p < 100) }'; then
    echo "--loss must be a percentage in [0, 100), got '$LOSS'" >&2; exit 2
fi
case "$LOOP" in auto|asyncio|uvloop) ;; *) echo "--loop must be auto, asyncio or uvloop" >&2; exit 2 ;; esac
if ! [[ $TIMEOUT =~ ^[0-9]+$ ]] || [ "$TIMEOUT" -lt 10 ]; then
    echo "--timeout must be an integer >= 10 (seconds)" >&2; exit 2
fi

skip() { echo "SKIP: $*" >&2; exit 77; }

[ "$(id -u)" -eq 0 ] || skip "must be run as root (creates network namespaces)"
command -v ip >/dev/null || skip "the ip command (iproute2) is not installed"
command -v timeout >/dev/null || skip "timeout (coreutils) is not installed"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$HERE/../.venv/bin/python" ]; then PYTHON=$HERE/../.venv/bin/python; else PYTHON=python3; fi
fi
"$PYTHON" -c 'import rudp' 2>/dev/null || skip "$PYTHON cannot import rudp (set PYTHON=...)"

T0=$(date +%s.%N)
NS_A=rudp-a-$$
NS_B=rudp-b-$$
VETH_A=rva$$
VETH_B=rvb$$
NET=$(( $$ % 250 + 1 ))
ADDR_A=10.231.$NET.1
ADDR_B=10.231.$NET.2
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rudp-netns-chat.XXXXXX")
PIDS=()
CREATED_NS=()

cleanup() {
    local rc=$? pid ns alive
    trap - EXIT INT TERM
    exec 3>&2 2>/dev/null  # no "Killed" job notices while tearing down
    # `ip netns exec` forks: the processes to stop are the ones inside our own
    # namespaces (all started by us), plus the local ones we recorded.
    ns_pids() { for ns in "${CREATED_NS[@]}"; do ip netns pids "$ns" 2>/dev/null; done; }
    for pid in $(ns_pids) "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        alive=0
        for pid in $(ns_pids) "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" -eq 0 ] && break
        sleep 0.1
    done
    for pid in $(ns_pids) "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
    for ns in "${CREATED_NS[@]}"; do ip netns del "$ns" 2>/dev/null; done
    wait
    exec 2>&3 3>&-
    if [ "$KEEP_LOGS" -eq 1 ]; then echo "logs kept in $WORK" >&2; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

# A watchdog bounds the whole run even if something below were to hang.
# Killing it (cleanup) also ends its sleep, which must not keep our stdout open.
(
    trap 'kill "$sp" 2>/dev/null; exit 0' TERM
    sleep "$TIMEOUT" >/dev/null 2>&1 </dev/null & sp=$!
    wait "$sp" && { echo "netns_chat: timed out after ${TIMEOUT}s" >&2; kill -TERM $$; }
) &
PIDS+=($!)

elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }
log() { echo "[$(elapsed)s] $*"; }
fail() { echo "FAIL: $*" >&2; dump_logs; exit 1; }
dump_logs() {
    local f
    for f in "$WORK"/*.log; do
        [ -e "$f" ] || continue
        echo "----- $(basename "$f")" >&2
        tail -n 40 "$f" >&2
    done
}

# wait_for FILE EXTENDED-REGEX SECONDS: poll until a line of FILE matches.
wait_for() {
    local file=$1 re=$2 deadline
    deadline=$(awk -v n="$(date +%s.%N)" -v s="$3" 'BEGIN { printf "%.2f", n + s }')
    while :; do
        grep -qE -- "$re" "$file" 2>/dev/null && return 0
        awk -v n="$(date +%s.%N)" -v d="$deadline" 'BEGIN { exit !(n > d) }' && return 1
        sleep 0.05
    done
}

# -- the network: two namespaces, one veth pair, addresses only inside them

if ip netns list 2>/dev/null | grep -qE "^($NS_A|$NS_B)( |\$)"; then
    echo "namespace $NS_A or $NS_B already exists (left over from an interrupted run?); delete it with ip netns del" >&2
    exit 1
fi
ip netns add "$NS_A" 2>"$WORK/ip.err" || skip "cannot create network namespaces: $(cat "$WORK/ip.err")"
CREATED_NS+=("$NS_A")
ip netns add "$NS_B" || fail "ip netns add $NS_B"
CREATED_NS+=("$NS_B")
# Both ends are created directly inside the namespaces: never in ours.
ip link add "$VETH_A" netns "$NS_A" type veth peer name "$VETH_B" netns "$NS_B" \
    || fail "cannot create the veth pair"
ip -n "$NS_A" addr add "$ADDR_A/30" dev "$VETH_A" || fail "address on $VETH_A"
ip -n "$NS_B" addr add "$ADDR_B/30" dev "$VETH_B" || fail "address on $VETH_B"
for ns in "$NS_A" "$NS_B"; do ip -n "$ns" link set lo up || fail "lo up in $ns"; done
ip -n "$NS_A" link set "$VETH_A" up || fail "$VETH_A up"
ip -n "$NS_B" link set "$VETH_B" up || fail "$VETH_B up"
log "namespaces $NS_A ($ADDR_A) <-> $NS_B ($ADDR_B) via $VETH_A/$VETH_B"

# -- optional loss, in both directions

LOSS_METHOD=none
LOSS_KIND=none
loss_iptables() {
    command -v iptables >/dev/null || return 1
    local p ns dev
    p=$(awk -v l="$LOSS" 'BEGIN { printf "%.6f", l / 100 }')
    for ns in "$NS_A:$VETH_A" "$NS_B:$VETH_B"; do
        dev=${ns#*:}; ns=${ns%%:*}
        ip netns exec "$ns" iptables -w -A INPUT -i "$dev" -p udp \
            -m statistic --mode random --probability "$p" -j DROP 2>>"$WORK/loss.err" || return 1
    done
}
loss_netem() {
    ip netns exec "$NS_A" tc qdisc add dev "$VETH_A" root netem loss "$LOSS%" 2>>"$WORK/loss.err" || return 1
    ip netns exec "$NS_B" tc qdisc add dev "$VETH_B" root netem loss "$LOSS%" 2>>"$WORK/loss.err" || return 1
}
loss_bpf() {
    # ld rand (SKF_AD_RANDOM); if A >= threshold: classid 1:20 (blackhole) else no match.
    local threshold ns dev
    threshold=$(awk -v l="$LOSS" 'BEGIN { t = (1 - l / 100) * 4294967296; if (t > 4294967295) t = 4294967295; printf "%.0f", t }')
    for ns in "$NS_A:$VETH_A" "$NS_B:$VETH_B"; do
        dev=${ns#*:}; ns=${ns%%:*}
        ip netns exec "$ns" sh -c "
            tc qdisc add dev $dev root handle 1: htb default 10 r2q 100000 &&
            tc class add dev $dev parent 1: classid 1:10 htb rate 10gbit &&
            tc class add dev $dev parent 1: classid 1:20 htb rate 10gbit &&
            tc qdisc add dev $dev parent 1:20 handle 20: blackhole &&
            tc filter add dev $dev parent 1: protocol ip bpf \
                bytecode '4,32 0 0 4294963256,53 0 1 $threshold,6 0 0 65568,6 0 0 0,'
        " 2>>"$WORK/loss.err" || { tc -n "$ns" qdisc del dev "$dev" root 2>/dev/null; return 1; }
    done
}
loss_counters() {
    case $LOSS_KIND in
        iptables) for ns in "$NS_A" "$NS_B"; do
                       ip netns exec "$ns" iptables -w -L INPUT -v -n -x 2>/dev/null |
                           awk -v ns="$ns" '/statistic/ { printf "  %s: %s packets dropped\n", ns, $1 }'
                   done ;;
        netem|bpf) for ns in "$NS_A:$VETH_A" "$NS_B:$VETH_B"; do
                         ip netns exec "${ns%%:*}" tc -s qdisc show dev "${ns#*:}" |
                             awk -v dev="${ns#*:}" '/^qdisc (netem|blackhole)/ { getline; if (match($0, /dropped [0-9]+/)) printf "  %s: %s packets dropped\n", dev, substr($0, RSTART + 8, RLENGTH - 8) }'
                     done ;;
    esac
}

if awk -v l="$LOSS" 'BEGIN { exit !(l > 0) }'; then
    if [ "$USE_IPTABLES" -eq 1 ] && loss_iptables; then
        LOSS_KIND=iptables
        LOSS_METHOD="iptables statistic random, p=$LOSS% per direction"
    elif loss_netem; then
        LOSS_KIND=netem
        LOSS_METHOD="tc netem loss $LOSS% per direction"
    elif loss_bpf; then
        LOSS_KIND=bpf
        LOSS_METHOD="tc htb + cBPF random filter into a blackhole qdisc, $LOSS% per direction (no netem in this kernel)"
    else
        skip "cannot emulate packet loss here: $(tr '\n' ' ' < "$WORK/loss.err")"
    fi
    [ "$USE_IPTABLES" -eq 1 ] && ! command -v iptables >/dev/null && log "iptables is not installed: using tc instead"
    log "loss: $LOSS_METHOD"
fi

# -- the chat

PYRUN=(timeout -k 2 "$TIMEOUT" "$PYTHON" -u)
ip netns exec "$NS_A" "${PYRUN[@]}" "$HERE/chat_server.py" --host "$ADDR_A" --port "$PORT" --loop "$LOOP" \
    >"$WORK/server.log" 2>&1 </dev/null &
SERVER=$!
PIDS+=("$SERVER")
wait_for "$WORK/server.log" "listening on" 15 || fail "the chat server did not start"
log "server: $(grep -m1 'listening on' "$WORK/server.log" | cut -d' ' -f2-)"

# feeder ME OTHER: the stdin script of client ME.
feeder() {
    local me=$1 other=$2 out=$WORK/$1.log
    wait_for "$out" "^\* welcome " 20 || return 1
    wait_for "$out" "^\* $other joined|^\* welcome .*[ ,]$other(,|\$)" 20 || return 1
    sleep 0.2
    echo "hello from $me"
    sleep 0.2
    echo "/who"
    wait_for "$out" "^\* online \(2\): " 20
    sleep 0.2
    echo "$me says goodbye"
    wait_for "$out" "^<$other> $other says goodbye\$" 20
    sleep 0.2  # then EOF: the client half-closes
}

start_client() {
    local me=$1 other=$2
    mkfifo "$WORK/$me.in"
    feeder "$me" "$other" >"$WORK/$me.in" &
    PIDS+=($!)
    ip netns exec "$NS_B" "${PYRUN[@]}" "$HERE/chat_client.py" "$ADDR_A" "$PORT" --nick "$me" --loop "$LOOP" \
        --timeout 15 <"$WORK/$me.in" >"$WORK/$me.log" 2>&1 &
    PIDS+=($!)
    eval "CLIENT_$me=\$!"
}
start_client alice bob
start_client bob alice
log "clients alice and bob started in $NS_B"

status=0
wait "$CLIENT_alice"; rc_alice=$?
wait "$CLIENT_bob"; rc_bob=$?
log "clients exited: alice=$rc_alice bob=$rc_bob"
wait_for "$WORK/server.log" "alice left" 5 && wait_for "$WORK/server.log" "bob left" 5 || true
# Stop the server the way a user would, one SIGTERM to its python process: it
# must exit 0 within a few seconds. (`ip netns exec` forks: the process is
# found among those in the namespace; timeout and ip pass its status on.)
for pid in $(ip netns pids "$NS_A"); do
    case $(cat "/proc/$pid/comm" 2>/dev/null) in python*) kill -TERM "$pid" 2>/dev/null ;; esac
done
t_stop=$(date +%s.%N)
wait "$SERVER"; rc_server=$?
stop_secs=$(awk -v a="$t_stop" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
log "server exited: $rc_server after ${stop_secs}s"
grep -E "still closing|giving up" "$WORK/server.log" | sed 's/^/    server: /'

# -- checks

check() {  # check DESCRIPTION FILE REGEX
    if grep -qE -- "$3" "$2"; then echo "  ok    $1"; else echo "  FAIL  $1"; status=1; fi
}
echo "summary (loop: $LOOP, loss: ${LOSS}%, $(elapsed) s):"
[ "$rc_alice" -eq 0 ] && echo "  ok    alice exited 0" || { echo "  FAIL  alice exited $rc_alice"; status=1; }
[ "$rc_bob" -eq 0 ] && echo "  ok    bob exited 0" || { echo "  FAIL  bob exited $rc_bob"; status=1; }
[ "$rc_server" -eq 0 ] && echo "  ok    server exited 0 on SIGTERM (${stop_secs}s)" || { echo "  FAIL  server exited $rc_server"; status=1; }
if grep -q "still closing" "$WORK/server.log"; then
    # Not counted as a failure: the chat worked, but a connection of the server
    # did not finish closing (typically LAST_ACK whose final ACK was lost after
    # the client's UDP socket went away), so the shutdown waited for it.
    echo "  WARN  server shutdown waited for: $(grep -m1 -o 'still closing: .*' "$WORK/server.log" | cut -d' ' -f3-)"
fi
for pair in alice:bob bob:alice; do
    me=${pair%%:*}; other=${pair#*:}
    check "$me saw $other's hello" "$WORK/$me.log" "^<$other> hello from $other\$"
    check "$me saw $other's goodbye" "$WORK/$me.log" "^<$other> $other says goodbye\$"
    check "$me's /who lists both" "$WORK/$me.log" "^\* online \(2\): alice, bob\$"
    check "server saw $me join" "$WORK/server.log" " $me joined from "
    check "server saw $me leave" "$WORK/server.log" " $me left"
    if grep -qE "warning|Traceback|connection lost" "$WORK/$me.log"; then
        echo "  FAIL  $me reported a problem: $(grep -m1 -E "warning|Traceback|connection lost" "$WORK/$me.log")"; status=1
    else
        echo "  ok    $me closed cleanly (no warnings)"
    fi
done
if grep -q "Traceback" "$WORK/server.log"; then echo "  FAIL  server traceback"; status=1; fi
echo "  lines received: alice $(wc -l <"$WORK/alice.log"), bob $(wc -l <"$WORK/bob.log")"
[ "$LOSS_KIND" != none ] && loss_counters
if [ "$status" -ne 0 ]; then
    dump_logs
    echo "RESULT: FAIL"
    exit 1
fi
echo "RESULT: OK"
exit 0
