"""Hold Linux's receive timestamping switched on for a test's phases."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

#: Linux's SO_TIMESTAMPNS (also the control message's type; Python does not name it)
SO_TIMESTAMPNS = 35


@contextlib.contextmanager
def receive_stamping_on(timeout_s: float = 5.0) -> Iterator[bool]:
    """Linux switches receive timestamping on for all sockets through deferred work when a
    socket first asks for it, and off when the last such socket closes. On a loaded machine a
    short phase can end before the switch, and then every answer is truthfully timed on the
    loop's clock. A loopback TCP pair that asks for stamps, kept open until the block ends,
    holds the switch on; yields whether a stamped packet was seen within `timeout_s`."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        sender = socket.create_connection(listener.getsockname())
        receiver, _ = listener.accept()
    with sender, receiver:
        receiver.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        receiver.settimeout(timeout_s)
        deadline = time.monotonic() + timeout_s
        stamped = False
        while not stamped and time.monotonic() < deadline:
            sender.sendall(b"x")
            _, ancillary, _, _ = receiver.recvmsg(16, socket.CMSG_SPACE(16))
            stamped = bool(ancillary)  # TCP leaves the stamp out while the switch is off
            if not stamped:
                time.sleep(0.01)
        yield stamped
