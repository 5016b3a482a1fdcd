"""A per-process Unix socket that answers ``rudp ss`` with a JSON snapshot.

Each EndpointDriver registers itself here (a weak reference, once per UDP
socket). ``expose()`` binds ``<dir>/<pid>.sock`` (directory 0700, socket
0600, removed at exit) and serves it on the running loop: a client that
connects gets one JSON document describing every listener and connection of
this process, then EOF. The snapshot is read on each driver's own loop in
one go, from the engine's public state (``Endpoint.connections``,
``Endpoint.listeners``, ``rudp.core.stats.connection_info``): nothing is
counted per segment for it.

Exposure is opt-in for library users: call ``expose()`` from a coroutine, or
set ``RUDP_SS=1`` in the environment and the first rudp socket exposes its
process. ``RUDP_SS_DIR`` overrides the directory (default
``$XDG_RUNTIME_DIR/rudp``, else ``/tmp/rudp-$UID``).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import json
import logging
import os
import socket
import stat
import sys
import threading
import weakref
from typing import TYPE_CHECKING, Any

from ..core.stats import connection_info

if TYPE_CHECKING:
    from .driver import EndpointDriver

logger = logging.getLogger("rudp")

ENV_ENABLE = "RUDP_SS"
ENV_DIR = "RUDP_SS_DIR"
#: How long one driver on another thread's loop may take to answer.
_CROSS_LOOP_TIMEOUT = 2.0

#: Listener counters every snapshot carries, zero until they count something.
LISTENER_COUNTERS = (
    "syn_received", "accepted", "cookies_sent", "cookies_validated", "cookies_rejected",
    "syn_dropped_backlog", "syn_dropped_per_source", "half_open_evicted", "listen_overflow",
    "rst_sent", "rst_rate_limited", "amplification_limited", "malformed",
)

_drivers: weakref.WeakSet[EndpointDriver] = weakref.WeakSet()
_lock = threading.Lock()


def socket_dir() -> str:
    """Where the per-process sockets live (the same rule for ``rudp ss``)."""
    explicit = os.environ.get(ENV_DIR)
    if explicit:
        return explicit
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return os.path.join(runtime, "rudp")
    return f"/tmp/rudp-{os.getuid()}"


def _private_dir(path: str) -> None:
    """Create ``path`` 0700, or check that an existing one is ours and private:
    another user's directory in /tmp could otherwise collect our snapshots."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise PermissionError(f"{path} is not a directory owned by uid {os.getuid()}")
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(path, 0o700)


def _process_name() -> str:
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else "python"
    base = os.path.basename(argv0)
    if base == "__main__.py":  # python -m package
        base = os.path.basename(os.path.dirname(argv0))
    return base or "python"


def _format_addr(addr: Any) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def driver_snapshot(driver: EndpointDriver) -> list[dict[str, Any]]:
    """Listeners and connections of one UDP socket (run on its loop)."""
    if driver.socket.fileno() < 0:
        return []
    local = _format_addr(driver.sockname)
    ep = driver.endpoint
    out: list[dict[str, Any]] = []
    for listener in ep.listeners.values():
        entry: dict[str, Any] = {"state": "LISTEN", "local": local, "peer": "*:*"}
        entry.update(dict.fromkeys(LISTENER_COUNTERS, 0))  # counters start absent
        entry.update(ep.listener_stats(listener))
        entry.update(driver.udp.kernel_drops())
        entry["recv_queue"] = entry.get("accept_queue", 0)
        entry["send_queue"] = entry.get("backlog", 0)
        out.append(entry)
    for conn in list(ep.connections.values()):
        entry = {"local": local, "peer": _format_addr(conn.addr)}
        entry.update(connection_info(conn))
        if conn.listener is not None:
            entry["listener_port"] = conn.listener.port
        out.append(entry)
    return out


async def snapshot() -> dict[str, Any]:
    """Every live driver's listeners and connections: those on the running
    loop read at once, those on other threads' running loops through
    ``call_soon_threadsafe``; drivers of stopped or closed loops are skipped."""
    here = asyncio.get_running_loop()
    sockets: list[dict[str, Any]] = []
    waits: list[concurrent.futures.Future[list[dict[str, Any]]]] = []
    with _lock:
        drivers = list(_drivers)
    for driver in drivers:
        loop = driver.loop
        if loop.is_closed():
            continue
        if loop is here:
            sockets.extend(driver_snapshot(driver))
        elif loop.is_running():
            fut: concurrent.futures.Future[list[dict[str, Any]]] = concurrent.futures.Future()

            def take(d: EndpointDriver = driver, f: Any = fut) -> None:
                try:
                    f.set_result(driver_snapshot(d))
                except Exception as exc:  # reported through the future, not raised here
                    f.set_exception(exc)

            try:
                loop.call_soon_threadsafe(take)
            except RuntimeError:  # closed meanwhile
                continue
            waits.append(fut)
    for fut in waits:
        try:
            got: list[dict[str, Any]] = await asyncio.wait_for(
                asyncio.wrap_future(fut), _CROSS_LOOP_TIMEOUT)
            sockets.extend(got)
        except Exception:  # a busy or dying loop: leave it out
            logger.debug("rudp ss: a loop on another thread did not answer", exc_info=True)
    return {"pid": os.getpid(), "process": _process_name(), "argv": list(sys.argv),
            "sockets": sockets}


class _Answer(asyncio.Protocol):
    """Writes one snapshot and closes; whatever the client sends is ignored."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._task = asyncio.ensure_future(self._answer(transport))

    async def _answer(self, transport: asyncio.BaseTransport) -> None:
        try:
            data = json.dumps(await snapshot(), separators=(",", ":")).encode() + b"\n"
            transport.write(data)  # type: ignore[attr-defined]
        except Exception:  # never break the program we observe
            logger.exception("rudp ss: snapshot failed")
        finally:
            transport.close()

    def data_received(self, data: bytes) -> None:
        pass


class _Exposed:
    """The bound socket of this process and the loop that serves it."""

    def __init__(self) -> None:
        self.path: str | None = None
        self.sock: socket.socket | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server: asyncio.AbstractServer | None = None
        self.task: asyncio.Task[Any] | None = None

    def serving_on(self, loop: asyncio.AbstractEventLoop) -> bool:
        return self.sock is not None and self.loop is loop and not loop.is_closed()

    def teardown(self) -> None:
        """Stop serving (the loop that served may be closed already)."""
        loop, server, sock, task = self.loop, self.server, self.sock, self.task
        self.loop = self.server = self.sock = self.task = None
        if loop is not None and not loop.is_closed():
            if task is not None and not task.done():
                task.cancel()  # closed before it started serving
            if server is not None:
                server.close()
        if sock is not None:
            sock.close()
        self._unlink()

    def _unlink(self) -> None:
        if self.path is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            self.path = None

    def at_exit(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self._unlink()


_exposed = _Exposed()
atexit.register(_exposed.at_exit)


def expose(loop: asyncio.AbstractEventLoop | None = None) -> str:
    """Serve ``rudp ss`` snapshots of this process on ``loop`` (default: the
    running one); returns the socket's path. Idempotent; a later call from
    another loop (after ``asyncio.run`` returned, say) moves the socket there.
    Raises OSError/PermissionError if the directory is not usable."""
    if loop is None:
        loop = asyncio.get_running_loop()
    with _lock:
        if _exposed.serving_on(loop):
            assert _exposed.path is not None
            return _exposed.path
        _exposed.teardown()
        directory = socket_dir()
        _private_dir(directory)
        path = os.path.join(directory, f"{os.getpid()}.sock")
        try:
            os.unlink(path)  # left by a dead process whose pid we now have
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            os.chmod(path, 0o600)
            sock.listen(16)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        _exposed.path, _exposed.sock, _exposed.loop = path, sock, loop

        async def serve() -> None:
            try:
                server = await loop.create_unix_server(_Answer, sock=sock)
            except OSError as exc:  # the socket was closed meanwhile
                logger.debug("rudp ss: not serving %s: %s", path, exc)
                return
            if _exposed.sock is sock:
                _exposed.server = server
            else:
                server.close()

        _exposed.task = loop.create_task(serve())
        return path


def expose_or_warn() -> str | None:
    """``expose()`` for programs that expose by default (the ``rudp`` command,
    the examples): a directory that cannot be used is a warning, not an error."""
    try:
        return expose()
    except OSError as exc:
        logger.warning("rudp ss: cannot expose this process's connections: %s", exc)
        return None


def close() -> None:
    """Stop serving ``rudp ss`` and remove this process's socket."""
    with _lock:
        _exposed.teardown()


def exposed_path() -> str | None:
    """The socket this process serves ``rudp ss`` on, if any."""
    return _exposed.path


def register(driver: EndpointDriver) -> None:
    """A new UDP socket: listed in snapshots while it lives. With
    ``RUDP_SS=1`` in the environment its loop also serves them."""
    with _lock:
        _drivers.add(driver)
    if os.environ.get(ENV_ENABLE, "") not in ("", "0") and not _exposed.serving_on(driver.loop):
        try:
            expose(driver.loop)
        except OSError as exc:
            logger.warning("RUDP_SS: cannot expose connections: %s", exc)
