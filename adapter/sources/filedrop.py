"""The file drop: a directory (local or a mounted share) polled on schedule.

A file is taken once it is complete: its size and modification time were the same on the
previous poll (``complete_when: stable``), or ``NAME.done`` exists next to it (``marker``).
Its messages (FHS/BHS batches split) go through the inbox door; once they are committed the
file is recorded as taken in the source state, then moved to ``archive/`` (or to ``error/``
when nothing in it could be read). A crash between the commit and the move is harmless: the
next poll finds the record and only moves the file; a crash before the record is written
re-reads a file whose messages the inbox already holds, and they are recognised as
duplicates. The record is keyed by the sha256 of the content with the size and mtime: file
names are never stored, since LIS file names can carry patient identifiers.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path

from adapter.errors import MessageError
from adapter.intake import Intake
from adapter.parse.decode import decode_message
from adapter.sources.config import FileDropConfig
from adapter.sources.events import Events
from adapter.store.inbox import Incoming, incoming

SOURCE = "file-drop"
ARCHIVE, ERROR = "archive", "error"
Snapshot = dict[str, tuple[int, int]]  # name -> (size, mtime_ns)


def readable(message: Incoming, forced_charset: str | None = None) -> bool:
    """True when the message is HL7 that decodes (it may still be refused later)."""
    if not message.raw.startswith(b"MSH"):
        return False
    try:
        decode_message(message.raw, forced_charset)
    except MessageError:
        return False
    return True


def stable(previous: Snapshot, current: Snapshot) -> list[str]:
    """Names whose size and mtime did not change since the previous poll."""
    return sorted(name for name, seen in current.items() if previous.get(name) == seen)


class FileDropSource:
    """``poll(intake)`` takes every complete file once; returns the messages handed in."""

    def __init__(
        self,
        config: FileDropConfig,
        *,
        forced_charset: str | None = None,
        events: Events | None = None,
    ) -> None:
        self.config = config
        self.forced_charset = forced_charset
        self.events = events or Events()
        self._previous: Snapshot = {}

    def poll(self, intake: Intake) -> int:
        total = 0
        for path in self.complete()[: self.config.max_files_per_poll]:
            try:
                total += self._take(intake, path)
            except OSError as exc:  # vanished, unreadable, not movable: try again next poll
                self.events.emit(
                    "file_drop.skipped", level=logging.WARNING, error=type(exc).__name__
                )
        return total

    def complete(self) -> list[Path]:
        """The files ready to take, in name order."""
        directory = self.config.directory
        suffix = self.config.marker_suffix
        files = {
            p.name: p
            for p in directory.glob(self.config.pattern)
            if p.is_file() and not p.name.endswith(suffix)
        }
        if self.config.complete_when == "marker":
            return [files[n] for n in sorted(files) if (directory / (n + suffix)).is_file()]
        current = {name: _signature(path) for name, path in files.items()}
        ready = stable(self._previous, current)
        self._previous = current
        return [files[name] for name in ready]

    def _take(self, intake: Intake, path: Path) -> int:
        data = path.read_bytes()
        size, mtime = _signature(path)
        key = f"file:{hashlib.sha256(data).hexdigest()}"
        seen = f"{size}:{mtime}:"
        recorded = intake.store.get_state(SOURCE, key)
        if recorded is not None and recorded.startswith(seen):
            self._move(path, recorded.removeprefix(seen))  # committed before a crash
            self.events.emit(
                "file_drop.moved_after_restart", destination=recorded.removeprefix(seen)
            )
            return 0
        messages = incoming(data, path.name)
        destination = ERROR
        if any(readable(m, self.forced_charset) for m in messages):
            accepted = intake.accept(messages)
            destination = ARCHIVE
            self.events.emit(
                "file.taken", messages=len(messages), kept=sum(a.kept for a in accepted)
            )
        else:
            self.events.emit("file_drop.unreadable", level=logging.WARNING, bytes=len(data))
        intake.store.set_state(SOURCE, key, seen + destination)
        self._move(path, destination)
        return len(messages) if destination == ARCHIVE else 0

    def _move(self, path: Path, destination: str) -> None:
        folder = self.config.archive_dir if destination == ARCHIVE else self.config.error_dir
        folder.mkdir(parents=True, exist_ok=True)
        marker = path.with_name(path.name + self.config.marker_suffix)
        shutil.move(path, _free_name(folder, path.name))
        if marker.is_file():
            shutil.move(marker, _free_name(folder, marker.name))
        self._previous.pop(path.name, None)


def _signature(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_size, info.st_mtime_ns


def _free_name(folder: Path, name: str) -> Path:
    """``folder/name``, or ``name.1``, ``name.2``... when a file of that name was archived."""
    target = folder / name
    counter = 0
    while target.exists():
        counter += 1
        target = folder / f"{name}.{counter}"
    return target
