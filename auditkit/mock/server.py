"""Running the mock SUT with uvicorn's public API: `MockServer` (a background thread, for Python,
notebooks and tests), `serve_forever` (the foreground, for `auditkit mock` and the child process
of `MockProcess`) and the pieces they share.

Both bind the listening socket themselves and hand it to `uvicorn.Server.serve(sockets=...)`,
so port 0 gets a free port with no bind-then-rebind race and a busy port fails fast with a
one-line SetupError.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from types import FrameType
from typing import Any, Self

import uvicorn
from starlette.applications import Starlette

from auditkit.config import MockConfig
from auditkit.errors import SetupError
from auditkit.mock.app import create_app
from auditkit.mock.engine import MockState, empty_stats
from auditkit.mock.handle import MockHandle

#: uvicorn's grace period for in-flight requests at shutdown before it cancels them.
GRACEFUL_SHUTDOWN_S = 2
#: How long `MockServer.start` waits for uvicorn to be serving.
START_TIMEOUT_S = 10.0
#: How often the watcher looks at uvicorn's public `started` flag while starting, then at
#: `should_exit` (uvicorn itself looks at that one every 0.1 s; `MockServer.stop` does not wait
#: for the watcher).
_WATCH_START_S = 0.005
_WATCH_EXIT_S = 0.05
_LISTEN_BACKLOG = 2048
_STDIN_FD = 0


def uvicorn_config(app: Starlette, *, foreground: bool = False) -> uvicorn.Config:
    """uvicorn settings for the mock.

    httptools (a C parser) rather than h11: an in-thread mock shares a process and the GIL with
    the client, and h11 made the parser the mock's main CPU cost. In the background the host
    process's logging is left alone (a notebook's, a test run's: no dictConfig), and uvicorn's
    warnings still reach stderr; in the foreground uvicorn formats its own log lines.
    """
    logging: dict[str, Any] = {} if foreground else {"log_config": None}
    return uvicorn.Config(
        app,
        http="httptools",
        ws="none",
        lifespan="off",
        log_level="warning",
        access_log=False,
        proxy_headers=False,  # one less middleware per request; the mock trusts nobody anyway
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        **logging,
    )


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: a free one), or SetupError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP, not the default 0: asyncio only sets TCP_NODELAY on accepted sockets
    # whose proto says TCP, and without it Nagle + delayed ACK add ~40 ms to every response
    # (uvicorn writes headers and body separately).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        # Accepted sockets inherit TCP_NODELAY from the listener (Linux, BSD): covers uvloop's
        # transports too, whatever they do themselves.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Lets a restarted server reuse a port in TIME_WAIT; Linux still refuses a port that
        # another socket is listening on.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(_LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        why = exc.strerror or str(exc)
        raise SetupError(f"mock server: cannot listen on {host}:{port} ({why})") from None
    return sock


def url_for(host: str, port: int) -> str:
    """Base URL of a server on host:port (IPv6 hosts bracketed)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def _watch(
    server: uvicorn.Server, state: MockState, on_ready: Callable[[], None] | None
) -> None:
    """Report readiness, then wake hanging handlers as soon as the server is told to exit
    (before uvicorn waits for their connections, which would never finish on their own)."""
    while not server.started and not server.should_exit:
        await asyncio.sleep(_WATCH_START_S)
    if server.started and on_ready is not None:
        on_ready()
    while not server.should_exit:
        await asyncio.sleep(_WATCH_EXIT_S)
    state.begin_shutdown()


async def serve(
    server: uvicorn.Server,
    state: MockState,
    sock: socket.socket,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Serve on `sock` until `server.should_exit` (uvicorn sets it on SIGINT/SIGTERM when run
    in the main thread); `on_ready()` runs once connections are being accepted."""
    watcher = asyncio.ensure_future(_watch(server, state, on_ready))
    try:
        await server.serve(sockets=[sock])
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


def _run(main: Coroutine[Any, Any, None], *, fast_loop: bool) -> None:
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if fast_loop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main)


class MockServer(MockHandle):
    """The mock SUT served by uvicorn on a background thread with its own event loop.

    Usable from plain Python, from inside a running event loop (Jupyter: the loop is in another
    thread) and many times per process::

        with MockServer(MockConfig(cache="output")) as mock:
            httpx.get(f"{mock.url}/v1/models")

    It shares the caller's process and GIL: for timing that must not depend on the client's
    CPU use, use `MockProcess` (same interface).
    """

    def __init__(
        self, cfg: MockConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        super().__init__(cfg, host, port)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state: MockState | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:PORT (no trailing slash, no /v1)."""
        return url_for(self.host, self.port)

    @property
    def running(self) -> bool:
        """True while the server thread is serving."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout_s: float = START_TIMEOUT_S) -> Self:
        """Bind, start serving and return once uvicorn accepts connections (idempotent).

        Each start gets fresh state (caches, counters, RNG). Raises SetupError if the port is
        busy or the server does not come up within `timeout_s`.
        """
        if self.running:
            return self
        sock = bind(self.host, self._requested_port)
        self._port = sock.getsockname()[1]
        app = create_app(self.cfg)
        state: MockState = app.state.mock
        server = uvicorn.Server(uvicorn_config(app))
        ready = threading.Event()
        self._state, self._server, self._error, self._loop = state, server, None, None
        thread = threading.Thread(
            target=self._serve_in_thread,
            args=(server, state, sock, ready),
            name=f"auditkit-mock:{self._port}",
            daemon=True,
        )
        self._thread = thread
        thread.start()
        deadline = time.monotonic() + timeout_s
        while not ready.wait(0.01):
            if not thread.is_alive() or time.monotonic() > deadline:
                why = (
                    repr(self._error)
                    if self._error is not None
                    else f"not up after {timeout_s:g} s"
                )
                self.stop(timeout_s=2.0)
                sock.close()
                raise SetupError(f"mock server did not start on {self.url} ({why})")
        return self

    def _serve_in_thread(
        self,
        server: uvicorn.Server,
        state: MockState,
        sock: socket.socket,
        ready: threading.Event,
    ) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            await serve(server, state, sock, on_ready=ready.set)

        try:
            # asyncio, not uvloop: the thread's loop lives next to the caller's own.
            _run(main(), fast_loop=False)
        except BaseException as exc:  # includes uvicorn's SystemExit on startup failure
            self._error = exc
        finally:
            sock.close()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Shut down gracefully (hanging requests are dropped); bounded by about `timeout_s`."""
        server, thread, loop, state = self._server, self._thread, self._loop, self._state
        if server is None or thread is None:
            return

        def request_exit() -> None:
            if state is not None:
                state.begin_shutdown()  # hanging handlers first: uvicorn would wait for them
            server.should_exit = True

        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(request_exit)
        server.should_exit = True
        thread.join(timeout_s)
        if thread.is_alive():
            server.force_exit = True  # stop waiting for connections and tasks
            thread.join(1.0)
        self._server = self._thread = self._loop = None

    def stats(self) -> dict[str, Any]:
        """Counters: requests, completed, rejected, in_flight, cache_hits, prefix_hits,
        computations, coalesced, tail_requests, connections and faults (injected, by kind).
        The last run's numbers remain available after stop()."""
        if self._state is None:
            return empty_stats()
        return self._state.stats()

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "not started"
        return f"MockServer({where}, model={self.cfg.model!r}, cache={self.cfg.cache!r})"


def _exit_when_stdin_closes(server: uvicorn.Server) -> None:
    """Ask the server to exit once stdin reaches EOF: a parent that holds our stdin's pipe is
    gone (or let us go), even if it was killed before it could stop us."""

    def wait() -> None:
        # os.read on the descriptor, not sys.stdin: a daemon thread blocked inside the buffered
        # reader holds its lock, and the interpreter aborts at exit when it cannot take it.
        with contextlib.suppress(OSError):
            while os.read(_STDIN_FD, 65536):
                pass
        server.should_exit = True

    threading.Thread(target=wait, name="auditkit-mock:stdin", daemon=True).start()


def serve_forever(
    cfg: MockConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    on_ready: Callable[[str], None] | None = None,
    until_stdin_closes: bool = False,
    api_key: str | None = None,
) -> None:
    """Serve the mock in the foreground until SIGINT/SIGTERM, then shut down and return.
    `api_key`: requests without `Authorization: Bearer <api_key>` get HTTP 401.

    `on_ready(url)` is called once it accepts connections (default: one line on stderr).
    `until_stdin_closes`: also stop when stdin reaches EOF (a child process watching its
    parent). Uses uvloop when installed. Raises SetupError if the port is busy.
    """
    cfg = cfg if cfg is not None else MockConfig()
    sock = bind(host, port)
    url = url_for(host, sock.getsockname()[1])

    def announce() -> None:
        if on_ready is not None:
            on_ready(url)
        else:
            print(
                f"auditkit mock: model {cfg.model!r} at {url} (cache={cfg.cache}); Ctrl+C to stop",
                file=sys.stderr,
                flush=True,
            )

    app = create_app(cfg, api_key=api_key)
    server = uvicorn.Server(uvicorn_config(app, foreground=True))
    if until_stdin_closes:
        _exit_when_stdin_closes(server)

    def on_sigterm(_signum: int, _frame: FrameType | None) -> None:
        # Before and after uvicorn's own handler is installed (it re-raises the signal once it
        # has shut down): a graceful stop and a normal return, not death by signal.
        server.should_exit = True

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_sigterm) if main_thread else None
    try:
        _run(serve(server, app.state.mock, sock, on_ready=announce), fast_loop=True)
    except (KeyboardInterrupt, asyncio.CancelledError):
        # uvicorn handles SIGINT itself (graceful shutdown), then re-raises it for the caller;
        # the shutdown already happened, so returning normally is the clean outcome.
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        sock.close()
