"""A UNIX-socket proxy that counts vineyard IPC requests (socket round trips).

Clients connect to ``listen``; each connection is forwarded to ``upstream``. Client to
server: frames (8-byte little-endian length + JSON) are counted by their "type". Server to
client: bytes pass through, and each fd the server passes (SCM_RIGHTS, one per 1-byte
message) is passed on with its byte.
"""
from __future__ import annotations

import collections
import json
import os
import socket
import struct
import threading
from typing import Counter


class CountingProxy:
    """Thread-safe counters of the requests seen on every connection since start."""

    def __init__(self, listen: str, upstream: str) -> None:
        self.upstream = upstream
        self.lock = threading.Lock()
        self.requests: Counter[str] = collections.Counter()
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if os.path.exists(listen):
            os.unlink(listen)
        self.server.bind(listen)
        self.server.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def snapshot(self) -> Counter[str]:
        with self.lock:
            return collections.Counter(self.requests)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.connect(self.upstream)
            threading.Thread(target=self._requests, args=(client, server), daemon=True).start()
            threading.Thread(target=self._replies, args=(server, client), daemon=True).start()

    def _requests(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            self._count_requests(src, dst)
        except OSError:  # either side went away
            pass

    def _count_requests(self, src: socket.socket, dst: socket.socket) -> None:
        buf = b""
        while data := src.recv(1 << 20):
            dst.sendall(data)
            buf += data
            while len(buf) >= 8:
                (length,) = struct.unpack("<Q", buf[:8])
                if len(buf) < 8 + length:
                    break
                # the JSON text ends at a NUL when inline bytes follow it (vy_put)
                text = buf[8:8 + length].split(b"\0", 1)[0]
                kind = json.loads(text).get("type", "?")
                buf = buf[8 + length:]
                with self.lock:
                    self.requests[kind] += 1
        dst.shutdown(socket.SHUT_WR)

    @classmethod
    def _replies(cls, src: socket.socket, dst: socket.socket) -> None:
        try:
            cls._pass_replies(src, dst)
        except OSError:  # either side went away
            pass

    @staticmethod
    def _pass_replies(src: socket.socket, dst: socket.socket) -> None:
        # A read stops right after a message that carries fds, so the fd belongs to the
        # last byte read (the 1-byte carrier); everything before it is plain data.
        space = socket.CMSG_SPACE(16 * 4)
        while True:
            data, ancdata, _, _ = src.recvmsg(1 << 20, space)
            if not data:
                break
            fds = [fd for level, kind, payload in ancdata
                   if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS
                   for fd in struct.unpack(f"{len(payload) // 4}i", payload[:len(payload) // 4 * 4])]
            if not fds:
                dst.sendall(data)
                continue
            if len(data) > 1:
                dst.sendall(data[:-1])
            socket.send_fds(dst, [data[-1:]], fds)
            for fd in fds:
                os.close(fd)
        dst.shutdown(socket.SHUT_WR)
