"""JSON lines over pipes, shared by the driver and its warm helper processes (fork server, steering worker)."""

from __future__ import annotations

import json
import os
from typing import Any

__all__ = ["LineReader", "send"]


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
        return [json.loads(line) for line in lines if line.strip()]


def send(fd: int, message: dict[str, Any]) -> None:
    data = (json.dumps(message) + "\n").encode()
    while data:
        n = os.write(fd, data)
        data = data[n:]
