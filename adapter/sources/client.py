"""A blocking MLLP client: send one message, read its one reply. Used by the LIS query pull
and by ``trialbridge mllp-send``. Socket errors become :class:`SourceError`."""

from __future__ import annotations

import socket
import ssl
from types import TracebackType

from adapter.errors import SourceError
from adapter.sources.framing import BadFrame, FrameDecoder, frame


class MllpClient:
    """One persistent connection; ``request`` may be called many times."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float = 30.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.where = f"{host}:{port}"
        try:
            raw = socket.create_connection((host, port), timeout=timeout)
            self._sock = tls.wrap_socket(raw, server_hostname=host) if tls else raw
        except (OSError, ssl.SSLError) as exc:
            raise SourceError(f"cannot connect to {self.where}: {exc}") from exc
        self._decoder = FrameDecoder()
        self._waiting: list[bytes] = []

    def __enter__(self) -> MllpClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    def send(self, payload: bytes) -> None:
        try:
            self._sock.sendall(frame(payload))
        except OSError as exc:
            raise SourceError(f"sending to {self.where} failed: {exc}") from exc

    def send_raw(self, data: bytes) -> None:
        """Send bytes as they are, unframed (to test how a listener copes with bad input)."""
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise SourceError(f"sending to {self.where} failed: {exc}") from exc

    def receive(self) -> bytes:
        """The next reply frame's payload."""
        while not self._waiting:
            try:
                chunk = self._sock.recv(65536)
            except ssl.SSLError as exc:  # TLS 1.3: a refused client certificate shows here
                raise SourceError(
                    f"{self.where} ended the TLS session ({exc.reason or exc}): does it "
                    "require a client certificate (--cert/--key) signed by its CA?"
                ) from exc
            except OSError as exc:  # includes the timeout
                raise SourceError(f"no reply from {self.where}: {exc}") from exc
            if not chunk:
                raise SourceError(f"{self.where} closed the connection before replying")
            for item in self._decoder.feed(chunk):
                if isinstance(item, BadFrame):
                    raise SourceError(f"{self.where} replied with a bad frame: {item.reason}")
                self._waiting.append(item)
        return self._waiting.pop(0)

    def request(self, payload: bytes) -> bytes:
        self.send(payload)
        return self.receive()
