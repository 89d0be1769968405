# -*- coding: utf-8 -*-
# Private to restorable.backup: a minimal QMP client (qemu-storage-daemon's monitor socket).
from __future__ import annotations

import json
import socket
import time
from typing import Any


class QmpError(Exception):
    """QEMU answered with an error, or not at all."""


class QmpClient:
    def __init__(self, path: str, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.buffer = b""

    def connect(self, wait: float = 10.0) -> None:
        deadline = time.monotonic() + wait
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(self.path)
                break
            except OSError as exc:
                sock.close()
                if time.monotonic() > deadline:
                    raise QmpError("no QMP monitor at %s: %s" % (self.path, exc)) from None
                time.sleep(0.05)
        self.sock = sock
        self._message()  # the greeting
        self.execute("qmp_capabilities")

    def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        request: dict[str, Any] = {"execute": command}
        if arguments is not None:
            request["arguments"] = arguments
        self.sock.sendall(json.dumps(request).encode() + b"\n")
        while True:
            message = self._message()
            if "return" in message:
                return message["return"]
            if "error" in message:
                raise QmpError("%s: %s" % (command, message["error"].get("desc", message["error"])))
            # events arrive in between; the caller polls job state instead

    def _message(self) -> dict[str, Any]:
        while b"\n" not in self.buffer:
            try:
                chunk = self.sock.recv(65536)
            except OSError as exc:
                raise QmpError("QMP connection: %s" % exc) from None
            if not chunk:
                raise QmpError("QMP connection closed")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
