"""Loss detection and recovery through the connection, as scripted exchanges
(no clock; every time is an argument): RTT samples from per-segment send
times (RFC 6298 §3 Karn), D-SACK generation (RFC 2883 §4), RACK's reordering
timer (RFC 8985 §6.3), PRR (RFC 6937), D-SACK undo (RFC 3708), F-RTO (RFC
5682) and Eifel after an RTO (RFC 3522, RFC 4015), the TLP episode (RFC 8985
§7). Recovery alone is tested in test_recovery.py.
"""

from __future__ import annotations

import pytest

from rudp.core.config import Config
from rudp.core.connection import Connection
from rudp.core.seqnum import MASK

try:
    from scripted import *  # noqa: F403 - the harness is the test vocabulary
except ImportError:  # pragma: no cover - when tests/ is imported as a package
    from tests.scripted import *  # noqa: F403

ISS = LOCAL_SEQ
IRS = REMOTE_SEQ
SACK = BASE.replace(sack=True)
S = [ISS + 1 + 1000 * i for i in range(21)]  # segment k starts at S[k]


def data(n: int, start: int = 0) -> bytes:
    return bytes((start + i) % 251 for i in range(n))


def handshake(config: Config = BASE, rtt: float = 0.1, **peer_options: object) -> Connection:
    peer_options.setdefault("mss", REMOTE_MSS)
    conn = syn_sent(config)
    deliver(conn, seg(IRS, ISS + 1, SYN | ACK, **peer_options), rtt)
    recv(conn, rtt)
    conn.events()
    return conn


def send_ten(conn: Connection, t: float) -> bytes:
    payload = data(10_000)
    conn.send(payload)
    got = recv(conn, t)
    assert [s.seq for s in got] == [s & MASK for s in S[:10]]
    return payload


# --- RTT in microseconds (RFC 6298 §3 with per-segment send times) -------------


def test_rtt_sample_has_microsecond_resolution_with_timestamps() -> None:
    """The timestamp clock ticks in milliseconds; the send times do not: a
    250 us round trip reads 250 us, not 0 or 1 ms."""
    cfg = BASE.replace(timestamps=True)
    conn = handshake(cfg, rtt=0.0004, ts=(5, 1))
    conn.send(data(100))
    [sent] = recv(conn, 1.0)
    deliver(conn, seg(IRS + 1, ISS + 101, ts=(6, sent.ts[0])), 1.00025)
    assert conn.rtt.srtt == pytest.approx(0.0004 * 7 / 8 + 0.00025 / 8)


def test_no_rtt_sample_from_a_retransmission() -> None:
    """Karn's rule (RFC 6298 §3): the ACK of a retransmitted segment gives no
    sample (without timestamps nothing tells which copy was acked)."""
    conn = handshake(rtt=0.1)
    conn.send(data(100))
    recv(conn, 1.0)
    fire(conn, 1.3)
    recv(conn, 1.3)
    srtt = conn.rtt.srtt
    deliver(conn, seg(IRS + 1, ISS + 101), 1.31)
    assert conn.rtt.srtt == srtt
    assert conn.rtt.backoff == 1  # not ended by a sample either


def test_rtt_sample_from_a_retransmission_the_echo_names() -> None:
    """With timestamps, an echo of the retransmission's TSval proves it was the
    one acknowledged: its send time gives the sample."""
    cfg = BASE.replace(timestamps=True)
    conn = handshake(cfg, rtt=0.1, ts=(5, 1))
    conn.send(data(100))
    recv(conn, 1.0)
    fire(conn, 1.3)
    [again] = recv(conn, 1.3)
    deliver(conn, seg(IRS + 1, ISS + 101, ts=(6, again.ts[0])), 1.35)
    assert conn.rtt.backoff == 0
    assert conn.rtt.srtt == pytest.approx(0.1 * 7 / 8 + 0.05 / 8)


# --- D-SACK generation (RFC 2883 §4) -----------------------------------------------


def test_dsack_for_a_duplicate_below_rcv_nxt() -> None:
    """A segment that arrives again after it was acknowledged is reported in
    the first SACK block of the ACK it draws (RFC 2883 §4 (1)), once."""
    conn = handshake(SACK, sack_permitted=True)
    deliver(conn, seg(IRS + 1, ISS + 1, payload=data(500)), 0.2)
    fire(conn, 0.24)  # delayed ACK
    recv(conn, 0.24)
    deliver(conn, seg(IRS + 1, ISS + 1, payload=data(500)), 0.3)
    [ack] = recv(conn, 0.3)
    assert ack.ack == (IRS + 501) & MASK
    assert ack.sack == (((IRS + 1) & MASK, (IRS + 501) & MASK),)
    assert conn.stats.dsacks_sent == 1
    deliver(conn, seg(IRS + 501, ISS + 1, payload=data(500, 500)), 0.4)
    deliver(conn, seg(IRS + 1001, ISS + 1, payload=data(500, 1000)), 0.4)
    assert all(not s.sack for s in recv(conn, 0.4))  # reported once only


def test_dsack_for_a_duplicate_out_of_order_segment() -> None:
    """A duplicate of data held out of order: the D-SACK block first, then the
    SACK block that holds it (RFC 2883 §4 (3))."""
    conn = handshake(SACK, sack_permitted=True)
    deliver(conn, seg(IRS + 1001, ISS + 1, payload=data(500)), 0.2)
    recv(conn, 0.2)
    deliver(conn, seg(IRS + 1001, ISS + 1, payload=data(500)), 0.3)
    [ack] = recv(conn, 0.3)
    blk = ((IRS + 1001) & MASK, (IRS + 1501) & MASK)
    assert ack.sack == (blk, blk)


def test_dsack_for_a_partly_old_segment() -> None:
    conn = handshake(SACK, sack_permitted=True)
    deliver(conn, seg(IRS + 1, ISS + 1, payload=data(500)), 0.2)
    deliver(conn, seg(IRS + 301, ISS + 1, payload=data(500, 300)), 0.21)
    [ack] = recv(conn, 0.21)
    assert ack.ack == (IRS + 801) & MASK
    assert ack.sack == (((IRS + 301) & MASK, (IRS + 501) & MASK),)


def test_no_dsack_without_sack() -> None:
    conn = handshake(BASE)
    deliver(conn, seg(IRS + 1, ISS + 1, payload=data(500)), 0.2)
    deliver(conn, seg(IRS + 1, ISS + 1, payload=data(500)), 0.21)
    assert all(not s.sack for s in recv(conn, 0.21))
    assert conn.stats.dsacks_sent == 0


# --- RACK's reordering timer and D-SACK undo ----------------------------------------


def test_reorder_timer_then_dsack_undoes_the_recovery() -> None:
    """Segment 0 is SACKed around (segment 1 only): RACK waits min_RTT/4
    (RFC 8985 §6.3), then retransmits it. The original was only late: the
    retransmission comes back as a D-SACK, which undoes the reduction
    (RFC 3708 with RFC 4015's response) and widens the reordering window."""
    conn = handshake(SACK, sack_permitted=True)
    send_ten(conn, 0.1)
    deliver(conn, seg(IRS + 1, ISS + 1, sack=((S[1], S[2]),)), 0.2)
    recv_nothing(conn, 0.2)
    assert timer(conn) == pytest.approx(0.225)  # 0.1 + RACK.rtt 0.1 + 0.025
    fire(conn, 0.225)
    [rxt] = recv(conn, 0.225)
    assert rxt.seq == S[0] & MASK
    assert conn.recovery.in_recovery
    assert (conn.cc.cwnd, conn.cc.ssthresh) == (5000, 5000)
    # The original arrives after all: everything up to segment 1 is acked ...
    deliver(conn, seg(IRS + 1, S[2]), 0.23)
    # ... and then the retransmission, a duplicate.
    deliver(conn, seg(IRS + 1, S[2], sack=((S[0], S[1]),)), 0.33)
    assert conn.stats.spurious_recoveries == 1
    assert not conn.recovery.in_recovery
    assert conn.cc.ssthresh == 1 << 62  # pipe_prev = max(FlightSize, ssthresh)
    assert conn.recovery.reordering_seen
    assert conn.recovery.reo_wnd_mult == 2


# --- PRR (RFC 6937) ----------------------------------------------------------


def test_prr_spreads_the_reduction_over_the_acks() -> None:
    """Ten segments out (and two more by Limited Transmit), segment 0 lost.
    PRR (RFC 6937 §3) spreads the reduction over the ACKs instead of
    stopping all sending until pipe falls below cwnd."""
    conn = handshake(SACK, sack_permitted=True)
    payload = send_ten(conn, 0.1)
    conn.send(data(10_000, 10_000))
    sent = []
    for k in range(2, 10):
        deliver(conn, seg(IRS + 1, ISS + 1, sack=((S[1], S[k]),)), 0.2 + k / 1000)
        sent.append(len(recv(conn, 0.2 + k / 1000)))
    # k = 2, 3: a new segment for each SACKed one (pipe, RFC 6675 §5 with
    # Limited Transmit counted once). k = 4: three SACKed: recovery, ssthresh
    # = 12000 / 2, segment 0 resent (forced). Then while pipe > ssthresh,
    # sndcnt = ceil(prr_delivered * 6000 / 12000) - prr_out stays below one
    # segment; once pipe reaches ssthresh (k = 7), PRR-SSRB sends one segment
    # per segment delivered, keeping pipe at ssthresh.
    assert sent == [1, 1, 1, 0, 0, 0, 1, 1]
    assert conn.cc.ssthresh == 6000
    assert conn.recovery.pipe(conn.snd_una, conn.snd_nxt, True) == 6000
    assert conn.stats.fast_retransmits == 1
    del payload


# --- F-RTO and Eifel after an RTO (RFC 5682, RFC 3522, RFC 4015) ------------


def test_frto_spurious_timeout_is_undone() -> None:
    """No timestamps. The RTO resends segment 0; the next ACK acknowledges
    segments 0-3 (the originals were only delayed): F-RTO sends two new
    segments instead of going back (step 2b); the ACK after acknowledges
    more: the timeout was spurious (step 3b), cwnd/ssthresh come back."""
    conn = handshake(rtt=0.1)
    send_ten(conn, 0.1)
    conn.send(data(5000, 10_000))
    fire(conn, 0.4)
    [rxt] = recv(conn, 0.4)
    assert rxt.seq == S[0] & MASK
    assert conn.cc.cwnd == 1000
    deliver(conn, seg(IRS + 1, S[4]), 0.41)
    assert [s.seq for s in recv(conn, 0.41)] == [S[10] & MASK, S[11] & MASK]
    deliver(conn, seg(IRS + 1, S[6]), 0.42)
    assert conn.stats.spurious_timeouts == 1
    assert conn.cc.ssthresh == 1 << 62  # as before the timeout
    assert conn.cc.cwnd > 1000
    assert conn.stats.retransmits == 1  # segments 4-9 were not sent again
    assert conn.snd_nxt >= S[12]


def test_frto_genuine_timeout_goes_back() -> None:
    """F-RTO step 3a: after the two new segments, a duplicate ACK says the
    rest really was lost: resend from SND.UNA."""
    conn = handshake(rtt=0.1)
    send_ten(conn, 0.1)
    conn.send(data(5000, 10_000))
    fire(conn, 0.4)
    recv(conn, 0.4)
    deliver(conn, seg(IRS + 1, S[1]), 0.41)
    assert [s.seq for s in recv(conn, 0.41)] == [S[10] & MASK, S[11] & MASK]
    deliver(conn, seg(IRS + 1, S[1]), 0.42)  # duplicate ACK
    got = recv(conn, 0.42)
    assert got and got[0].seq == S[1] & MASK
    assert conn.stats.spurious_timeouts == 0
    assert conn.cc.ssthresh == 5000


def test_eifel_spurious_timeout_is_undone() -> None:
    """With timestamps the first ACK after the RTO decides: it echoes the
    original's TSval, older than the retransmission's (RFC 3522)."""
    cfg = BASE.replace(timestamps=True)
    conn = handshake(cfg, rtt=0.1, ts=(5, 1))
    conn.send(data(9880))
    first = recv(conn, 0.1)
    fire(conn, 0.4)
    recv(conn, 0.4)
    deliver(conn, seg(IRS + 1, ISS + 1 + 988 * 4, ts=(6, first[0].ts[0])), 0.41)
    assert conn.stats.spurious_timeouts == 1
    assert conn.cc.ssthresh == 1 << 62
    assert conn.snd_nxt == conn.snd_max  # no go-back-N


# --- the TLP episode (RFC 8985 §7.4) ---------------------------------------


def test_tlp_that_repairs_a_loss_reduces_cwnd() -> None:
    """The probe resends the last segment; the ACK for everything comes with
    no D-SACK: the probe repaired a loss, and cwnd comes down (§7.4)."""
    cfg = SACK.replace(tail_loss_probe=True)
    conn = handshake(cfg, sack_permitted=True)
    conn.send(data(3000))
    recv(conn, 0.1)
    deliver(conn, seg(IRS + 1, S[1]), 0.2)  # segment 0 acked; 1 and 2 lost
    recv(conn, 0.2)
    t = timer(conn)
    fire(conn, t)
    [probe] = recv(conn, t)
    assert probe.seq == S[2] & MASK
    assert conn.recovery.tlp_end == S[3]
    cwnd = conn.cc.cwnd
    # An ACK of exactly the probe's end may answer the original: wait (§7.4.2).
    deliver(conn, seg(IRS + 1, S[3]), t + 0.1)
    assert conn.stats.tlp_repairs == 0 and conn.recovery.tlp_end == S[3]
    conn.send(data(1000))
    recv(conn, t + 0.1)
    deliver(conn, seg(IRS + 1, S[3] + 1000), t + 0.2)  # beyond it, and no D-SACK came
    assert conn.stats.tlp_repairs == 1
    assert conn.cc.cwnd < cwnd


def test_tlp_crossed_by_a_delayed_ack_is_cleared_by_the_dsack() -> None:
    """The probe crosses the peer's delayed ACK of the original: that ACK
    covers exactly the probe's end and proves nothing; the D-SACK the
    probe's duplicate brings next ends the episode with no reduction (§7.4.2,
    as Linux's tcp_process_tlp_ack)."""
    cfg = SACK.replace(tail_loss_probe=True)
    conn = handshake(cfg, sack_permitted=True)
    conn.send(data(500))
    [orig] = recv(conn, 0.1)
    t = timer(conn)
    fire(conn, t)
    [probe] = recv(conn, t)
    assert probe.seq == orig.seq and conn.recovery.tlp_end == S[0] + 500
    cwnd = conn.cc.cwnd
    deliver(conn, seg(IRS + 1, S[0] + 500), t + 0.01)  # the delayed ACK of the original
    deliver(conn, seg(IRS + 1, S[0] + 500, sack=((S[0], S[0] + 500),)), t + 0.02)  # D-SACK
    assert conn.stats.tlp_repairs == 0 and conn.recovery.tlp_end == 0
    assert conn.cc.cwnd >= cwnd


def test_tlp_made_needless_by_a_dsack_changes_nothing() -> None:
    cfg = SACK.replace(tail_loss_probe=True)
    conn = handshake(cfg, sack_permitted=True)
    conn.send(data(3000))
    recv(conn, 0.1)
    deliver(conn, seg(IRS + 1, S[1]), 0.2)
    recv(conn, 0.2)
    t = timer(conn)
    fire(conn, t)
    recv(conn, t)
    cwnd = conn.cc.cwnd
    deliver(conn, seg(IRS + 1, S[3], sack=((S[2], S[3]),)), t + 0.1)
    assert conn.stats.tlp_repairs == 0
    assert conn.recovery.tlp_end == 0
    assert conn.cc.cwnd >= cwnd
