"""The fuzz targets: a mutant in, ``None`` when the property holds, else a :class:`Failure`.

``translate`` runs :func:`adapter.translate.translate` with the enrolment gate (the service's
path: enrolled subjects' messages are linked to the study and their visits) and without it
(``trialbridge map``'s path: every message is built); an ADT message's day of death is
computed too, as the service's processing job does next. ``mllp`` runs what the MLLP source does
with the bytes of one connection, without the socket: frame decoding (fed in uneven chunks),
``read_frame`` (the listener's per-frame answer) and the ACK; ``read_frame`` answers any
exception of its own checks with AE 207, which counts as a failure here.
"""

from __future__ import annotations

import hashlib
import json
import re
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from adapter.config import Settings
from adapter.errors import TrialBridgeError
from adapter.mappings import MappingSet
from adapter.sources.ack import Problem, build_ack, read_frame
from adapter.sources.framing import BadFrame, FrameDecoder, frame
from adapter.translate import Translation, death_date, translate
from adapter.trial.gate import Gate

RECEIVED = datetime(2024, 3, 1, 6, 0, tzinfo=UTC)
# read_frame answers an exception of its own checks with this (AE 207): a bug to report.
_UNREADABLE = "TrialBridge could not read it"
# What no FHIR string may hold (R4 datatypes: string, [ \r\n\t\S]+), and U+FFFD; in JSON
# text a control character is written as an escape (\u0000, \b, \f).
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffd]")
# JSON escapes read left to right, each two characters (or six for \uXXXX), so a run of
# backslashes is read once: the forbidden ones are captured, the others just consumed.
_JSON_ESCAPE = re.compile(r"\\(?:(u00(?:0[0-8bBcCeEfF]|1[0-9a-fA-F])|[bf])|.)")


@dataclass(frozen=True, slots=True)
class Failure:
    """The property broken by one mutant: which target, what kind, where in our code."""

    target: str
    kind: str  # an exception class, or "U+FFFD in output", "control character in output", ...
    detail: str  # first line of the exception text, cut short
    where: str  # file:line of the innermost frame in adapter/, when an exception

    def key(self) -> str:
        """Failures of one class: same target, kind and place."""
        return f"{self.target}: {self.kind} at {self.where}"


class TranslateTarget:
    """translate() with and without the enrolment gate."""

    name = "translate"

    def __init__(self, settings: Settings, mappings: MappingSet, gate: Gate) -> None:
        self.settings = settings
        self.mappings = mappings
        self.gate = gate

    def __call__(self, data: bytes) -> Failure | None:
        for gate in (self.gate, None):
            try:
                items = list(
                    translate(
                        data, "fuzz", self.settings, self.mappings, gate=gate, received_at=RECEIVED
                    )
                )
            except TrialBridgeError:
                continue  # a refusal in the project's own terms is allowed
            except Exception as exc:  # the property: nothing else escapes
                return failure(self.name, exc)
            for item in items:
                if item.vital is not None:  # what the service does next with an ADT
                    try:
                        death_date(item.vital, UTC)
                    except TrialBridgeError:
                        pass
                    except Exception as exc:
                        return failure(self.name, exc)
                found = bad_output(item)
                if found:
                    return Failure(self.name, found, _short(str(item.error or "")), item.source)
        return None


def bad_output(item: Translation) -> str:
    """What is wrong with one translation's output, or ''."""
    texts = [str(item.error)] if item.error else []
    texts += [h.reason for h in item.held]
    if item.bundle is not None:
        try:
            texts.append(json.dumps(item.bundle, default=_decimal, ensure_ascii=False))
        except (TypeError, ValueError) as exc:
            return f"bundle not serialisable ({type(exc).__name__})"
        if any(m[1] for m in _JSON_ESCAPE.finditer(texts[-1])):
            return "control character in output"
    for text in texts:
        if found := _FORBIDDEN.search(text):
            char = found.group()
            return "U+FFFD in output" if char == "\ufffd" else f"U+{ord(char):04X} in output"
    if item.error is not None and not item.error.location and not _whole_input(str(item.error)):
        return "refusal names no segment or field"
    return ""


def _whole_input(text: str) -> bool:
    """Errors about the input as a whole, which have no field to name."""
    return "the input is empty" in text or "holds no MSH segment" in text


def _decimal(value: Any) -> Any:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"non-finite decimal {value}")
        return str(value)
    raise TypeError(type(value).__name__)


class MllpTarget:
    """One connection's bytes through frame decoding, the frame check and the ACK."""

    name = "mllp"

    def __init__(self, forced_charset: str | None = None) -> None:
        self.forced_charset = forced_charset

    def __call__(self, data: bytes) -> Failure | None:
        stream = frame(data) if data[:1] != b"\x1c" else data + b"\x1c\r"  # also: no start block
        try:
            frames = _decoded(stream, hashlib.sha256(data).digest())
            if not frames:
                return Failure(self.name, "complete frame not answered", "", "framing")
            for item in frames:
                header, checked = read_frame(item, self.forced_charset)
                problem = checked if isinstance(checked, Problem) else None
                if problem is not None and _UNREADABLE in problem.text:  # its catch-all fired
                    return Failure(self.name, "frame check raised", problem.text, "ack.read_frame")
                ack = build_ack(header, "TB1", RECEIVED, problem)
                if not ack.startswith(b"MSH") or b"\rMSA" not in ack:
                    return Failure(self.name, "malformed ACK", _short(repr(ack[:60])), "ack")
        except Exception as exc:  # the property: every frame answered, nothing raised
            return failure(self.name, exc)
        return None


def _decoded(stream: bytes, noise: bytes) -> list[bytes | BadFrame]:
    """The frames of ``stream`` fed in uneven chunks (cut where ``noise`` says)."""
    decoder = FrameDecoder(max_bytes=1 << 20)
    frames: list[bytes | BadFrame] = []
    position = 0
    for n in noise:
        if position >= len(stream):
            break
        size = 1 + n * (1 + len(stream) // 512)
        frames += decoder.feed(stream[position : position + size])
        position += size
    frames += decoder.feed(stream[position:])
    return frames


def failure(target: str, exc: BaseException) -> Failure:
    """The failure an unexpected exception makes, named by the innermost frame in adapter/."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/adapter/" in f.filename]
    place = (ours or frames)[-1] if frames else None
    where = f"{place.filename.rsplit('/adapter/', 1)[-1]}:{place.lineno}" if place else "?"
    return Failure(target, type(exc).__name__, _short(str(exc)), where)


def _short(text: str) -> str:
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= 160 else line[:160] + "..."
