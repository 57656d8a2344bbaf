"""The file drop: a directory (local or a mounted share) polled on schedule.

A file is taken once it is complete: ``NAME.done`` exists next to it (``complete_when:
marker``, the recommended mode), or its size, modification time and inode were the same on
two polls (``stable``). It is read a megabyte at a time (:mod:`adapter.sources.filesplit`)
and its messages go through the inbox door in batches; once they are all committed the file
is recorded as taken in the source state and then deleted, or kept in ``archive/`` when
``archive_days`` asks for it (opt-in: the feed carries every patient of the hospital, and
nothing identifying one who is not enrolled may be kept).

What can go wrong stays with the file it concerns:

- a file that will never be accepted (larger than ``max_file_bytes``, nothing in it is HL7
  that decodes, or anything unexpected while reading it) goes to ``error/`` with
  ``NAME.reason`` beside it: what was wrong, where (message, segment, field) and what to do.
  The next file is taken as usual;
- a file that cannot be read now (permissions) is left in place and tried again later;
- a folder that cannot be read or written blocks the source: :meth:`FileDropSource.health`
  says why (``status``, ``/readyz``), and the folder is tried again after a back-off that
  doubles up to five minutes instead of on every poll.

In ``stable`` mode a LIS writer that stalls longer than a poll leaves a file that looks
complete but is not. So a taken file stays where it is for ``settle_seconds``: if it changes
meanwhile, it is taken again (a new content hash) and the messages already committed from its
first read are recognised by the inbox as duplicates; only a file unchanged for that long is
deleted or archived. ``marker`` mode has no such window: the LIS says when it is done.

Crash safety: a crash between the commit and the record re-reads a file whose messages the
inbox already holds (recognised as duplicates); a crash between the record and the move finds
the record on the next poll and only moves the file. The record is keyed by the sha256 of the
content with the size and mtime: file names are never stored, since LIS file names can carry
patient identifiers. Symbolic links in the folder are never followed.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import IO, Any

from adapter.errors import MessageError, SourceError, StoreError
from adapter.intake import Accepted, Intake
from adapter.parse.decode import decode_message
from adapter.sources.config import FileDropConfig
from adapter.sources.events import Events
from adapter.sources.filesplit import split_chunks
from adapter.store.inbox import Incoming, one_message

SOURCE = "file-drop"
ARCHIVE, ERROR, DELETE = "archive", "error", "delete"
REASON_SUFFIX = ".reason"
CHUNK_BYTES = 1 << 20  # read a megabyte at a time
BATCH_MESSAGES = 200  # messages committed together at most
BATCH_BYTES = 8 << 20  # ... and bytes
MAX_BACKOFF_SECONDS = 300.0
STATS_SECONDS = 60.0  # archive/ is counted (and purged past archive_days) this often
KEY = "sources.file_drop"

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Signature:
    """What tells a file changed without reading it."""

    size: int
    mtime_ns: int
    inode: int


def signature(info: os.stat_result) -> Signature:
    return Signature(info.st_size, info.st_mtime_ns, info.st_ino)


def stable(previous: dict[str, Signature], current: dict[str, Signature]) -> list[str]:
    """Names whose size, mtime and inode did not change since the previous poll."""
    return sorted(name for name, seen in current.items() if previous.get(name) == seen)


class RefusedError(SourceError):
    """A file's content will never be accepted: it goes to ``error/`` with this reason."""

    def __init__(self, what: str, where: str, todo: str, kind: str) -> None:
        super().__init__(f"{what} ({where}) — {todo}")
        self.what, self.where, self.todo = what, where, todo
        self.kind = kind  # too-large | not-hl7 | cut-short | door-failed | unexpected (logs)


class BlockedError(SourceError):
    """A folder of the drop cannot be read or written: nothing can be taken until fixed."""

    def __init__(self, key: str, folder: Path, problem: str, todo: str) -> None:
        super().__init__(f"{key} ({folder}) {problem} — {todo}")


@dataclass
class _Taken:
    """A taken file still in the folder, waiting to settle (``stable`` mode)."""

    signature: Signature
    destination: str
    at: float


@dataclass
class _Folders:
    """What ``status`` shows of archive/ (counts, never names; error/ is counted by status
    itself, adapter/service/sourcefacts.py)."""

    archive_files: int = 0
    archive_bytes: int = 0
    archive_oldest: float | None = None  # mtime (= archived at) of the oldest archived file
    checked_at: float = float("-inf")


@dataclass
class _Health:
    problem: str | None = None
    failures: int = 0
    retry_at: float = float("-inf")
    too_large: int = 0
    refused: int = 0
    unreadable: int = 0
    symlinks: int = 0
    waiting: int = 0
    settling: int = 0
    folders: _Folders = field(default_factory=_Folders)


class FileDropSource:
    """``poll(intake)`` takes every complete file once; returns the messages handed in."""

    def __init__(
        self,
        config: FileDropConfig,
        *,
        forced_charset: str | None = None,
        events: Events | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.config = config
        self.forced_charset = forced_charset
        self.events = events or Events()
        self.clock = clock
        self._previous: dict[str, Signature] = {}
        self._taken: dict[str, _Taken] = {}
        self._unreadable: dict[str, tuple[Signature, float]] = {}
        self._health = _Health()

    # Polling -----------------------------------------------------------------------------

    def poll(self, intake: Intake) -> int:
        now = self.clock()
        if now < self._health.retry_at:
            return 0  # a blocked folder is retried after its back-off, not on every poll
        try:
            check_tree(self.config)
            total = self._poll(intake)
        except BlockedError as exc:
            self._block(str(exc), now)
            return 0
        self._unblock()
        self._folder_stats(now)
        return total

    def _poll(self, intake: Intake) -> int:
        files, markers = self._listing()
        self._settle(files)
        self._unreadable = {n: held for n, held in self._unreadable.items() if n in files}
        ready = [name for name in self._complete(files, markers) if name not in self._taken]
        self._health.waiting = len(files) - len(self._taken)
        total = 0
        for name in ready[: self.config.max_files_per_poll]:
            total += self._take_one(intake, name, files[name])
        self._health.settling = len(self._taken)
        self._health.unreadable = len(self._unreadable)
        return total

    def _listing(self) -> tuple[dict[str, Signature], set[str]]:
        """Regular files matching the pattern (never through a symlink), and marker names."""
        files: dict[str, Signature] = {}
        markers: set[str] = set()
        symlinks = 0
        suffix = self.config.marker_suffix
        try:
            entries = list(os.scandir(self.config.directory))
        except OSError as exc:
            raise _blocked_reading(self.config.directory, exc) from exc
        for entry in entries:
            if entry.is_symlink():
                symlinks += fnmatchcase(entry.name, self.config.pattern)
                continue
            if not entry.is_file(follow_symlinks=False):
                continue
            if entry.name.endswith(suffix):
                markers.add(entry.name)
            elif fnmatchcase(entry.name, self.config.pattern):
                try:
                    files[entry.name] = signature(entry.stat(follow_symlinks=False))
                except FileNotFoundError:
                    continue
        if symlinks and symlinks != self._health.symlinks:
            self.events.emit("file_drop.symlinks_skipped", level=logging.WARNING, count=symlinks)
        self._health.symlinks = symlinks
        return files, markers

    def _complete(self, files: dict[str, Signature], markers: set[str]) -> list[str]:
        if self.config.complete_when == "marker":
            return sorted(n for n in files if n + self.config.marker_suffix in markers)
        ready = stable(self._previous, files)
        self._previous = files
        return ready

    def _settle(self, files: dict[str, Signature]) -> None:
        """Taken files: forget those that changed (they are taken again once stable), move
        out those unchanged for ``settle_seconds``."""
        now = self.clock()
        for name, taken in list(self._taken.items()):
            if files.get(name) != taken.signature:
                del self._taken[name]
                if name in files:
                    self.events.emit("file_drop.changed_after_taken", level=logging.WARNING)
            elif now - taken.at >= self.config.settle_seconds:
                self._dispose(self.config.directory / name, taken.destination)
                del self._taken[name]

    # One file ----------------------------------------------------------------------------

    def _take_one(self, intake: Intake, name: str, seen: Signature) -> int:
        """Take one file; whatever goes wrong with it stays with it."""
        path = self.config.directory / name
        held = self._unreadable.get(name)
        if held is not None and held[0] == seen and self.clock() < held[1]:
            return 0
        try:
            return self._take(intake, path)
        except RefusedError as refused:
            self._refuse(path, refused)
        except (BlockedError, StoreError):
            raise  # the folder or the store: every file waits
        except FileNotFoundError:
            pass  # gone (taken by someone else, or renamed by the LIS): nothing to do
        except OSError as exc:  # this file cannot be read now: the others go on
            self._unreadable[name] = (seen, self.clock() + 10 * self.config.poll_seconds)
            self.events.emit("file_drop.unreadable", level=logging.WARNING, error=_errno(exc))
        except Exception as exc:  # anything else concerns this file alone
            self._refuse(path, _unexpected(exc))
        return 0

    def _take(self, intake: Intake, path: Path) -> int:
        with _open(path) as file:
            info = os.fstat(file.fileno())
            self._check_size(info.st_size)
            digest = _digest(file, self.config.max_file_bytes, self._check_size)
            key = f"file:{digest}"
            seen = f"{info.st_size}:{info.st_mtime_ns}:"
            recorded = intake.store.get_state(SOURCE, key)
            if recorded is not None and recorded.startswith(seen):
                self.events.emit("file_drop.recorded_before")  # committed before a crash
                self._taken_or_disposed(path, signature(info), recorded.removeprefix(seen))
                return 0
            file.seek(0)
            hasher = hashlib.sha256()
            total = self._commit(intake, _chunks(file, hasher), path.name)
        if hasher.hexdigest() != digest:  # written to while read: read again once stable
            self.events.emit("file_drop.changed_while_read", level=logging.WARNING)
            return total
        destination = ARCHIVE if self.config.archive_days > 0 else DELETE
        intake.store.set_state(SOURCE, key, seen + destination)
        self.events.emit("file_drop.taken", total=total)
        self._taken_or_disposed(path, signature(info), destination)
        return total

    def _check_size(self, size: int) -> None:
        limit = self.config.max_file_bytes
        if size <= limit:
            return
        self._health.too_large += 1
        self.events.emit(
            "file_drop.limit", level=logging.WARNING, limit="max_file_bytes", bytes=size
        )
        raise RefusedError(
            f"the file holds {size:,} bytes, more than the {limit:,} allowed",
            "the whole file",
            f"split it into smaller files at the LIS, or raise {KEY}.max_file_bytes if a "
            "file this large is expected; then drop it again",
            "too-large",
        )

    def _commit(self, intake: Intake, chunks: Iterator[bytes], name: str) -> int:
        """Hand the file's messages to the inbox in batches. Unreadable messages are held
        back until a readable one is seen: a file with nothing readable commits nothing."""
        batch: list[Incoming] = []
        size = total = 0
        first_problem: tuple[int, Incoming, str] | None = None
        readable_seen = False
        try:
            for number, raw in enumerate(split_chunks(chunks), start=1):
                message = one_message(raw, f"{name}#{number}")
                problem = self.why_unreadable(message)
                if problem is not None and first_problem is None:
                    first_problem = (number, message, problem)
                readable_seen = readable_seen or problem is None
                batch.append(message)
                size += len(raw)
                if readable_seen and (len(batch) >= BATCH_MESSAGES or size >= BATCH_BYTES):
                    total += self._accept(intake, batch, total)
                    batch, size = [], 0
        except MessageError as exc:  # not HL7 at all, or an undecodable UTF-16/32 file
            if total:
                raise _refused_midway(total, exc) from exc
            raise _refused_message(None, None, str(exc), getattr(exc, "location", None)) from exc
        if not readable_seen:
            number, first, problem = first_problem or (1, None, "no message")
            raise _refused_message(number, first, problem, None)
        if batch:
            total += self._accept(intake, batch, total)
        return total

    def _accept(self, intake: Intake, batch: list[Incoming], before: int) -> int:
        """Commit one batch; if the door fails on something in it, find which message by
        committing them one at a time, so that the others still go in."""
        try:
            accepted = intake.accept(batch)
        except StoreError:
            raise
        except Exception:  # a message the gate cannot handle
            accepted, failed = [], []
            for number, message in enumerate(batch, start=before + 1):
                try:
                    accepted += intake.accept([message])
                except StoreError:
                    raise
                except Exception as exc:  # this message alone
                    failed.append((number, message, exc))
            if failed:
                self._report_accepted(accepted)
                raise _refused_at_door(failed) from failed[0][2]
        self._report_accepted(accepted)
        return len(batch)

    def _report_accepted(self, accepted: list[Accepted]) -> None:
        if accepted:  # the one event per batch with messages and kept (see events.py)
            kept = sum(a.kept for a in accepted)
            self.events.emit(
                "file_drop.accepted", level=logging.DEBUG, messages=len(accepted), kept=kept
            )

    def why_unreadable(self, message: Incoming) -> str | None:
        """Why the message is not HL7 that decodes, or None (it may still be refused later)."""
        if not message.raw.startswith(b"MSH"):
            return "the message does not start with MSH"
        try:
            decode_message(message.raw, self.forced_charset)
        except MessageError as exc:
            return str(exc)
        except Exception as exc:  # e.g. an MSH-18 naming a non-text codec
            return f"[MSH.18] the character set cannot be used ({type(exc).__name__}: {exc})"
        return None

    # Moving files out ----------------------------------------------------------------------

    def _taken_or_disposed(self, path: Path, seen: Signature, destination: str) -> None:
        if self.config.complete_when == "stable" and self.config.settle_seconds > 0:
            self._taken[path.name] = _Taken(seen, destination, self.clock())
        else:
            self._dispose(path, destination)

    def _dispose(self, path: Path, destination: str) -> None:
        """Delete the file (and its marker) or move them to archive/ or error/."""
        marker = path.with_name(path.name + self.config.marker_suffix)
        for each in (path, marker):
            if each is marker and not marker.is_file():
                continue
            try:
                if destination == DELETE:
                    each.unlink(missing_ok=True)
                else:
                    self._move(each, destination)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise _blocked_writing("directory", self.config.directory, exc) from exc
        self._previous.pop(path.name, None)
        self._unreadable.pop(path.name, None)

    def _move(self, path: Path, destination: str) -> Path:
        folder = self.config.archive_dir if destination == ARCHIVE else self.config.error_dir
        folder.mkdir(exist_ok=True)
        target = _free_name(folder, path.name)
        try:
            os.rename(path, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            shutil.move(path, target)
        if destination == ARCHIVE:
            now = self.clock()
            os.utime(target, (now, now))  # its age in archive/ counts from now (archive_days)
        self._health.folders.checked_at = float("-inf")  # counted again after this poll
        return target

    def _refuse(self, path: Path, refused: RefusedError) -> None:
        """Move the file to error/ with its reason beside it; the next file goes on."""
        self._health.refused += 1
        # Not "<source>.refused": the service counts those as peers refused by a guard.
        self.events.emit("file_drop.to_error", level=logging.WARNING, kind=refused.kind)
        try:
            info = path.lstat()
        except FileNotFoundError:
            return
        try:
            target = self._move(path, ERROR)
            _free_name(target.parent, target.name + REASON_SUFFIX).write_text(
                reason_text(refused, info.st_size, datetime.fromtimestamp(self.clock(), UTC)),
                encoding="utf-8",
            )
            marker = path.with_name(path.name + self.config.marker_suffix)
            if marker.is_file():
                self._move(marker, ERROR)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise _blocked_writing("error", self.config.error_dir, exc) from exc
        self._previous.pop(path.name, None)

    # Health ------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """What ``status`` and ``/readyz`` show of the drop: ``ok``, the ``problem`` (what,
        which key and folder, what to do), archive/'s files, bytes and age, and the counts
        of what went wrong that are not zero (never a file name)."""
        h, f = self._health, self._health.folders
        now = self.clock()
        counts = {
            "retry_in_seconds": max(round(h.retry_at - now), 0) if h.problem else 0,
            "settling_files": h.settling,
            "refused_files": h.refused,
            "too_large_files": h.too_large,
            "unreadable_files": h.unreadable,
            "symlinks_skipped": h.symlinks,
        }
        archive_age = None if f.archive_oldest is None else max(round(now - f.archive_oldest), 0)
        return {
            "ok": h.problem is None,
            "problem": h.problem,
            **{key: value for key, value in counts.items() if value},
            "archive_files": f.archive_files,
            "archive_bytes": f.archive_bytes,
            **({} if archive_age is None else {"archive_oldest_age_seconds": archive_age}),
        }

    def _block(self, problem: str, now: float) -> None:
        h = self._health
        if h.problem != problem:
            self.events.emit("file_drop.blocked", level=logging.ERROR, failures=h.failures + 1)
        h.problem = problem
        h.failures += 1
        delay = min(self.config.poll_seconds * 2 ** (h.failures - 1), MAX_BACKOFF_SECONDS)
        h.retry_at = now + max(delay, self.config.poll_seconds)

    def _unblock(self) -> None:
        h = self._health
        if h.problem is not None:
            self.events.emit("file_drop.unblocked", failures=h.failures)
        h.problem, h.failures, h.retry_at = None, 0, float("-inf")

    def _folder_stats(self, now: float) -> None:
        """Count archive/, and delete what is past ``archive_days``."""
        folders = self._health.folders
        if now - folders.checked_at < STATS_SECONDS:
            return
        purged = 0
        if self.config.archive_days > 0:
            purged = purge_archive(self.config, now - self.config.archive_days * 86400)
        if purged:
            self.events.emit("file_drop.archive_purged", files=purged)
        self._health.folders = folder_stats(self.config, now)


# Folders ----------------------------------------------------------------------------------


def check_tree(config: FileDropConfig) -> None:
    """Raise :class:`BlockedError` unless the drop folder can be listed and written, and archive/
    and error/ are real folders (not symlinks) that can be written when they exist."""
    directory = config.directory
    if not directory.is_dir():
        raise BlockedError(
            f"{KEY}.directory",
            directory,
            "does not exist or is not a folder",
            "create it (writable by the service's user) or fix the key",
        )
    if not os.access(directory, os.R_OK | os.W_OK | os.X_OK):
        raise BlockedError(
            f"{KEY}.directory",
            directory,
            "cannot be read and written by the service's user",
            "give that user read, write and search permission on it",
        )
    for key, folder in (("archive", config.archive_dir), ("error", config.error_dir)):
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise BlockedError(
                f"{KEY}.{key}",
                folder,
                "is not a real folder (a symbolic link or a file)",
                "replace it with a folder inside the drop folder",
            )
        if folder.exists() and not os.access(folder, os.W_OK | os.X_OK):
            raise BlockedError(
                f"{KEY}.{key}",
                folder,
                "cannot be written by the service's user",
                "give that user write and search permission on it",
            )


def folder_stats(config: FileDropConfig, now: float) -> _Folders:
    """Files in archive/ (markers aside), their bytes and when the oldest was archived."""
    stats = _Folders(checked_at=now)
    for entry in _entries(config.archive_dir):
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            info = entry.stat(follow_symlinks=False)
        except OSError:  # deleted meanwhile (by the purge or a person)
            continue
        stats.archive_bytes += info.st_size
        stats.archive_files += not entry.name.endswith(config.marker_suffix)
        if stats.archive_oldest is None or info.st_mtime < stats.archive_oldest:
            stats.archive_oldest = info.st_mtime
    return stats


def purge_archive(config: FileDropConfig, before: float) -> int:
    """Delete the files archived before ``before`` (seconds since the epoch)."""
    purged = 0
    for entry in _entries(config.archive_dir):
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < before:
                os.unlink(entry.path)
                purged += 1
        except OSError:
            continue  # tried again at the next count
    return purged


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    try:
        return list(os.scandir(folder))
    except OSError:
        return []


# Reading ----------------------------------------------------------------------------------


def _open(path: Path) -> IO[bytes]:
    """Open a regular file for reading, never through a symbolic link."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FileNotFoundError(errno.ENOENT, "not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _digest(file: IO[bytes], limit: int, check: Callable[[int], None]) -> str:
    """sha256 of the file, read in chunks; ``check`` refuses it when it grows past ``limit``."""
    hasher = hashlib.sha256()
    size = 0
    while chunk := file.read(CHUNK_BYTES):
        size += len(chunk)
        if size > limit:
            check(size)
        hasher.update(chunk)
    return hasher.hexdigest()


def _chunks(file: IO[bytes], hasher: Any) -> Iterator[bytes]:
    while chunk := file.read(CHUNK_BYTES):
        hasher.update(chunk)
        yield chunk


def _free_name(folder: Path, name: str) -> Path:
    """``folder/name``, or ``name.1``, ``name.2``... when a file of that name is there."""
    target = folder / name
    counter = 0
    while os.path.lexists(target):
        counter += 1
        target = folder / f"{name}.{counter}"
    return target


def _errno(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, type(exc).__name__)


def _blocked_reading(folder: Path, exc: OSError) -> BlockedError:
    return BlockedError(
        f"{KEY}.directory",
        folder,
        f"cannot be listed ({_errno(exc)})",
        "check that it exists, is mounted, and is readable by the service's user",
    )


def _blocked_writing(key: str, folder: Path, exc: OSError) -> BlockedError:
    return BlockedError(
        f"{KEY}.{key}",
        folder,
        f"files cannot be moved out of it or deleted ({_errno(exc)})",
        "give the service's user write permission on the drop folder and its error/ and "
        "archive/ folders (a read-only share cannot be a drop folder)",
    )


# Reasons ----------------------------------------------------------------------------------

_DROP_AGAIN = (
    "fix the file at the LIS (or ask its vendor), then drop it again; messages already "
    "taken from it are recognised and not sent twice"
)


def _refused_message(
    number: int | None, message: Incoming | None, problem: str, location: str | None
) -> RefusedError:
    where = "the file" if number is None else f"message {number}"
    if message is not None and message.control_id:
        where += f" (MSH-10 {message.control_id})"
    if location:
        where += f", {location}"
    what = f"nothing in the file is an HL7 message that can be read: {problem}"
    return RefusedError(what, where, _DROP_AGAIN, "not-hl7")


def _refused_midway(taken: int, exc: MessageError) -> RefusedError:
    return RefusedError(
        f"the file cannot be read past its first {taken} message(s): {exc}",
        f"after message {taken}" + (f", {exc.location}" if exc.location else ""),
        f"the first {taken} message(s) were taken; {_DROP_AGAIN}",
        "cut-short",
    )


def _refused_at_door(failed: list[tuple[int, Incoming, Exception]]) -> RefusedError:
    numbers = ", ".join(
        f"{n}" + (f" (MSH-10 {m.control_id})" if m.control_id else "") for n, m, _ in failed
    )
    kinds = ", ".join(sorted({type(exc).__name__ for _, _, exc in failed}))
    return RefusedError(
        f"the inbox could not take message(s) {numbers} ({kinds}); the file's other messages "
        "were taken",
        f"message(s) {numbers}",
        "report this to TrialBridge's maintainers with this reason file; " + _DROP_AGAIN,
        "door-failed",
    )


def _unexpected(exc: Exception) -> RefusedError:
    return RefusedError(
        f"an unexpected {type(exc).__name__} while reading the file: {exc}",
        "the file",
        "report this to TrialBridge's maintainers with this reason file; " + _DROP_AGAIN,
        "unexpected",
    )


def reason_text(refused: RefusedError, size: int, at: datetime) -> str:
    """The reason file written beside a file moved to error/ (nothing of the message but
    what the error names: the file beside it holds the rest)."""
    return (
        "TrialBridge did not take the file beside this one.\n"
        f"When:  {at.isoformat(timespec='seconds')} ({size:,} bytes)\n"
        f"What:  {_printable(refused.what)}\n"
        f"Where: {_printable(refused.where)}\n"
        f"To do: {refused.todo}.\n"
        "Delete both files once done: they may hold patient data.\n"
    )


def _printable(text: str) -> str:
    """``text`` with control characters (a NUL in an MSH-10, say) written as ``\\xNN``, so
    the reason file stays a text file a person can open."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
