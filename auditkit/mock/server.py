"""Running the mock SUT: `MockServer` (background thread, for Python, notebooks and tests) and
`serve_forever` (foreground, for `auditkit mock`).

Both bind the listening socket themselves before uvicorn starts, so port 0 gets a free port with
no bind-then-rebind race and a busy port fails fast with a one-line SetupError.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from auditkit.config import MockConfig
from auditkit.errors import SetupError
from auditkit.mock.app import TRANSPORT_STATE_KEY, MockState, create_app

#: uvicorn's grace period for in-flight requests at shutdown before it cancels them.
GRACEFUL_SHUTDOWN_S = 2
#: How long `MockServer.start` waits for uvicorn to be serving.
START_TIMEOUT_S = 10.0


class _TransportProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus the connection's transport in every request's state.

    httptools (a C parser) rather than h11: the mock shares a process and the GIL with the
    client in tests and notebooks, and h11 made the parser the mock's main CPU cost.

    ASGI has no way for an app to drop a connection without answering; the `reset`, `hang` and
    `die_after` faults need exactly that (see app.abort_connection).
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # uvicorn copies app_state into each request's scope["state"]; a per-connection copy
        # keeps one connection's transport out of the others' scopes.
        self.app_state = {**self.app_state, TRANSPORT_STATE_KEY: transport}


class _Server(uvicorn.Server):
    """uvicorn.Server that reports readiness and wakes hanging handlers before shutting down."""

    def __init__(
        self,
        config: uvicorn.Config,
        state: MockState,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(config)
        self.mock_state = state
        self.ready = threading.Event()
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self.ready.set()
            if self._on_ready is not None:
                self._on_ready()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Before uvicorn waits for connections to finish: hanging requests never would.
        self.mock_state.begin_shutdown()
        await super().shutdown(sockets=sockets)


def _uvicorn_config(app: Starlette, *, loop: str, log_config: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        loop=loop,
        http=_TransportProtocol,
        ws="none",
        lifespan="off",
        log_level="warning",
        log_config=log_config,
        access_log=False,
        proxy_headers=False,  # one less middleware per request; the mock trusts nobody anyway
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: a free one), or SetupError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP, not the default 0: asyncio only sets TCP_NODELAY on accepted sockets
    # whose proto says TCP, and without it Nagle + delayed ACK add ~40 ms to every response
    # (uvicorn writes headers and body separately).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        # Lets a restarted server reuse a port in TIME_WAIT; Linux still refuses a port that
        # another socket is listening on.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        why = exc.strerror or str(exc)
        raise SetupError(f"mock server: cannot listen on {host}:{port} ({why})") from None
    return sock


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class MockServer:
    """The mock SUT served by uvicorn on a background thread with its own event loop.

    Usable from plain Python, from inside a running event loop (Jupyter: the loop is in another
    thread) and many times per process::

        with MockServer(MockConfig(cache="output")) as mock:
            httpx.get(f"{mock.url}/v1/models")
    """

    def __init__(
        self, cfg: MockConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.cfg = cfg if cfg is not None else MockConfig()
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._state: MockState | None = None
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        """The bound port (raises RuntimeError before start)."""
        if self._port is None:
            raise RuntimeError("MockServer is not started")
        return self._port

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:PORT (no trailing slash, no /v1)."""
        return _url(self.host, self.port)

    @property
    def running(self) -> bool:
        """True while the server thread is serving."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout_s: float = START_TIMEOUT_S) -> MockServer:
        """Bind, start serving and return once uvicorn accepts connections (idempotent).

        Each start gets fresh state (caches, counters, RNG). Raises SetupError if the port is
        busy or the server does not come up within `timeout_s`.
        """
        if self.running:
            return self
        sock = _bind(self.host, self._requested_port)
        self._port = sock.getsockname()[1]
        app = create_app(self.cfg)
        state: MockState = app.state.mock
        # log_config=None: do not dictConfig the host process's logging (a notebook's, a test
        # run's); uvicorn's warnings still reach stderr through the root/last-resort handler.
        server = _Server(_uvicorn_config(app, loop="asyncio", log_config=None), state)
        self._state, self._server, self._error = state, server, None
        thread = threading.Thread(
            target=self._run, args=(server, sock), name=f"auditkit-mock:{self._port}", daemon=True
        )
        self._thread = thread
        thread.start()
        deadline = time.monotonic() + timeout_s
        while not server.ready.wait(0.01):
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

    def _run(self, server: _Server, sock: socket.socket) -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # includes uvicorn's SystemExit on startup failure
            self._error = exc
        finally:
            sock.close()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Shut down gracefully (hanging requests are dropped); bounded by about `timeout_s`."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(timeout_s)
        if thread.is_alive():
            server.force_exit = True  # stop waiting for connections and tasks
            thread.join(1.0)
        self._server = self._thread = None

    def stats(self) -> dict[str, Any]:
        """Counters: requests, completed, rejected, in_flight, cache_hits, prefix_hits and
        faults (injected, by kind). The last run's numbers remain available after stop()."""
        if self._state is None:
            return MockState(self.cfg).stats()
        return self._state.stats()

    def __enter__(self) -> MockServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> MockServer:
        # Starting blocks for a few ms; keep the caller's loop responsive anyway.
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "not started"
        return f"MockServer({where}, model={self.cfg.model!r}, cache={self.cfg.cache!r})"


def serve_forever(
    cfg: MockConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the mock in the foreground until SIGINT/SIGTERM, then shut down and return.

    `on_ready(url)` is called once it accepts connections (default: one line on stderr).
    Raises SetupError if the port is busy.
    """
    cfg = cfg if cfg is not None else MockConfig()
    sock = _bind(host, port)
    url = _url(host, sock.getsockname()[1])

    def announce() -> None:
        if on_ready is not None:
            on_ready(url)
        else:
            print(
                f"auditkit mock: model {cfg.model!r} at {url} (cache={cfg.cache}); Ctrl+C to stop",
                file=sys.stderr,
                flush=True,
            )

    app = create_app(cfg)
    # Foreground: uvloop if installed, and uvicorn's own log formatting.
    config = _uvicorn_config(app, loop="auto", log_config=LOGGING_CONFIG)
    server = _Server(config, app.state.mock, on_ready=announce)
    try:
        server.run(sockets=[sock])
    except (KeyboardInterrupt, asyncio.CancelledError):
        # uvicorn handles SIGINT itself (graceful shutdown), then re-raises it for the caller;
        # the shutdown already happened, so returning normally is the clean outcome.
        pass
    finally:
        sock.close()
