"""`MockHandle`: what `MockServer` (a thread) and `MockProcess` (a child process) share: the
settings, the bound port, and start/stop as a context manager, `with` or `async with`."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import Self

from auditkit.config import MockConfig


class MockHandle(ABC):
    """A mock SUT that is started and stopped on request (see `MockServer`, `MockProcess`)."""

    def __init__(
        self, cfg: MockConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.cfg = cfg if cfg is not None else MockConfig()
        self.host = host
        self._requested_port = port
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The bound port (raises RuntimeError before start)."""
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._port

    @abstractmethod
    def start(self) -> Self:
        """Start serving and return once connections are accepted (idempotent)."""

    @abstractmethod
    def stop(self) -> None:
        """Stop serving (idempotent)."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        # Starting blocks (a thread's start-up, a child's imports): off the caller's loop.
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)
