"""Run an asyncio server (the MLLP listener, the LIS simulator) in a thread of its own, for
callers that are not async: the scheduler's jobs, tests, the CLI."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from types import TracebackType

Serve = Callable[[asyncio.Event], Awaitable[None]]


class Background:
    """``with Background(serve):`` runs ``serve(stop)`` until the block ends, then sets
    ``stop`` and waits for ``serve`` to return (re-raising what it raised)."""

    def __init__(self, serve: Serve, name: str = "trialbridge-server") -> None:
        self._serve = serve
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> Background:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()
        self._started.wait()

    def stop(self, timeout: float = 30.0) -> None:
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the server did not stop within {timeout:g} s")
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            self._started.set()
            await self._serve(self._stop)

        try:
            self._loop.run_until_complete(main())
        except BaseException as exc:  # handed to the caller in stop()
            self.error = exc
            self._started.set()
        finally:
            self._loop.close()
