"""JSON lines over pipes: how the driver talks to its warm helper processes (the fork server,
the steering worker). One message is one JSON object on one line."""

from __future__ import annotations

import json
import os
from typing import Any

__all__ = ["LineReader", "decode", "encode", "send"]


def encode(message: dict[str, Any]) -> bytes:
    """One message as one line."""
    return (json.dumps(message) + "\n").encode()


def decode(line: bytes | str) -> dict[str, Any]:
    """The message on one line (without or with its newline)."""
    message: dict[str, Any] = json.loads(line)
    return message


def send(fd: int, message: dict[str, Any]) -> None:
    """Write one message whole to ``fd`` (a blocking pipe); OSError (BrokenPipeError) propagates."""
    data = encode(message)
    while data:
        data = data[os.write(fd, data):]


class LineReader:
    """Non-blocking reader of JSON lines from a pipe's file descriptor."""

    def __init__(self, fd: int):
        self.fd = fd
        self._buf = b""
        self.closed = False

    def read(self) -> list[dict[str, Any]]:
        """Messages available now (call when the fd is readable); ``closed`` is set at EOF."""
        try:
            chunk = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return []
        if not chunk:
            self.closed = True
            return []
        self._buf += chunk
        lines = self._buf.split(b"\n")
        self._buf = lines.pop()
        return [decode(line) for line in lines if line.strip()]
