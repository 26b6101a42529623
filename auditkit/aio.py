"""An event loop auditkit owns, on a worker thread.

Jupyter, papermill and nbval already run a loop in the main thread (asyncio.run fails there)
and ipykernel 7 stalls background tasks between cells, so all async work runs here instead:
the same blocking call works from plain Python, the CLI and every notebook front end.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # faster I/O loop: the client must outrun the endpoint (docs/performance.md)

        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        return asyncio.new_event_loop()


def owned_loop() -> asyncio.AbstractEventLoop:
    """The shared worker-thread loop, started on first use."""
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = _new_loop()
            thread = threading.Thread(target=loop.run_forever, name="auditkit-loop", daemon=True)
            thread.start()
            _loop = loop
        return _loop


def submit(coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    """Schedule a coroutine on the owned loop; returns a thread-safe future."""
    return asyncio.run_coroutine_threadsafe(coro, owned_loop())


def wait(future: concurrent.futures.Future[T]) -> T:
    """Block for a result in 0.1 s steps so Ctrl-C reaches the caller promptly."""
    while True:
        try:
            return future.result(timeout=0.1)
        except concurrent.futures.TimeoutError:
            continue


def call_soon(callback: Any, *args: Any) -> None:
    """Run a plain callback on the owned loop (thread-safe)."""
    owned_loop().call_soon_threadsafe(callback, *args)
