"""Dropping one client's TCP connection with a reset, from inside an ASGI app.

ASGI gives an app no way to drop a connection without answering, and uvicorn exposes neither
the transport nor the socket to the app. The `reset`, `hang` and `die_after` faults need exactly
that, so this module finds the connection's socket itself, through public stdlib calls only:
it lists the process's open file descriptors and picks the socket whose local and peer
addresses are the ones uvicorn put in the ASGI scope (`server`, `client`). That pair names one
TCP connection, so a match is exact even while other threads open and close descriptors.

It then sets SO_LINGER 0 and shuts down the read side. The event loop (asyncio or uvloop) reads
EOF, uvicorn's protocol does not keep half-open connections, so the transport closes the socket,
and a close with SO_LINGER 0 sends a RST: the client sees "connection reset by peer", never a
response or an orderly EOF.

Works where the process's descriptors are listed in /proc/self/fd (Linux) or /dev/fd (macOS).
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_FD_DIRS = (Path("/proc/self/fd"), Path("/dev/fd"))
_LINGER_ZERO = struct.pack("ii", 1, 0)


def _open_fds() -> Iterator[int]:
    for folder in _FD_DIRS:
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            if name.isdigit():
                yield int(name)
        return


def _address(value: Any) -> tuple[str, int] | None:
    if isinstance(value, list | tuple) and len(value) >= 2:
        return str(value[0]), int(value[1])
    return None


def find_connection_socket(local: Any, peer: Any) -> socket.socket | None:
    """A duplicate of the TCP socket connected from `local` to `peer` ((host, port) pairs as in
    an ASGI scope's `server` and `client`), or None. The caller closes it; closing a duplicate
    leaves the connection itself open."""
    want_local, want_peer = _address(local), _address(peer)
    if want_local is None or want_peer is None:
        return None
    for fd in _open_fds():
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            dup = os.dup(fd)
        except OSError:
            continue  # closed meanwhile (or the listing's own descriptor)
        sock = socket.socket(fileno=dup)
        try:
            if sock.type == socket.SOCK_STREAM and sock.family in (
                socket.AF_INET,
                socket.AF_INET6,
            ):
                here, there = sock.getsockname(), sock.getpeername()
                if (here[0], here[1]) == want_local and (there[0], there[1]) == want_peer:
                    return sock
        except OSError:
            pass  # not connected (a listener), or gone meanwhile
        sock.close()
    return None


def reset_connection(scope: Any) -> bool:
    """Make the connection that carried the ASGI request `scope` end with a TCP RST as soon as
    the server's event loop notices (within one loop iteration). False if no such socket."""
    sock = find_connection_socket(scope.get("server"), scope.get("client"))
    if sock is None:
        return False
    with sock, contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
        sock.shutdown(socket.SHUT_RD)
    return True
