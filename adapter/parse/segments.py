"""The segment layer under every message type: fields in the standard's numbering, split by
the message's own separators and unescaped.

Segments are split here with ``str.split``: building python-hl7's container tree for every
segment and reading it back as text was the largest single cost of translating a message.
Repetitions are all kept (``extract_field`` keeps only the first).

Escape sequences (HL7 v2.5.1 chapter 2, "Use of escape sequences in text fields") are read
here too, not by python-hl7's ``unescape``: that one logs the whole field for every empty
sequence (a 20 KB field gave 402 MB of log, with the note text in it), raises ``ValueError``
on ``\\.brX\\``, repeats ``\\.sp<n>\\`` n times with no bound, and turns ``\\X00\\`` into a
NUL. Here a sequence that is not understood is kept as sent (nothing is lost or invented),
hex data is decoded in the message's own character set, and counts are bounded.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from adapter.errors import ParseError
from adapter.parse.model import PatientIdentifier

_STANDARD_ENCODING = "^~\\&"
# "^~\\&" (the escape character doubled) comes from a source-code string literal copied into
# a feed; it is unambiguous, so it is repaired rather than refused.
_DOUBLED_ESCAPE = "^~\\\\&"
# Formatting escapes (§2.7.6) with an optional count: .sp<n>, .in<+/-n>, .ti<+/-n>, .sk<n>.
_FORMAT = re.compile(r"^\.(sp|in|ti|sk)([+-]?\d{1,2})?$")
_HEX = re.compile(r"^X((?:[0-9A-Fa-f]{2}){1,256})$")
# Line breaks, centring, fill on/off, highlighting on/off: plain text keeps the breaks only.
_PLAIN = {".br": "\n", ".ce": "\n", ".fi": "", ".nf": "", "H": "", "N": ""}
# Hex data may carry line breaks and tabs; other controls would break the FHIR string rules.
_HEX_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffd]")


# More repetitions than any real field has (OBX-5 of a long text report: tens): splitting
# millions of them was the one input that made a message take seconds.
MAX_REPETITIONS = 1000


@dataclass(frozen=True, slots=True)
class Seps:
    field: str
    repetition: str
    component: str
    subcomponent: str
    escape: str  # MSH-2's third character; "\\" nearly always, but a message may choose


class Segment:
    """One segment with field access in the standard's numbering (PID-3 is ``raw(3)``)."""

    def __init__(
        self, fields: list[str], seps: Seps, unescape: Callable[[str], str], index: int
    ) -> None:
        self._fields = fields
        self._seps = seps
        self._unescape_text = unescape
        self.name = fields[0]
        self.location = f"{self.name}[{index}]"
        # MSH-1 is the field separator itself, so MSH-n sits one place earlier in the split.
        self._shift = 1 if self.name == "MSH" else 0

    def raw(self, number: int) -> str:
        """Field ``number`` as sent (escaped, all repetitions)."""
        if self._shift and number == 1:
            return self._seps.field
        index = number - self._shift
        return self._fields[index] if 0 < index < len(self._fields) else ""

    def repetitions(self, number: int) -> list[list[str]]:
        """Every repetition of a field, each as its unescaped components (at most
        :data:`MAX_REPETITIONS`: a field with more is refused, not cut short)."""
        raw = self.raw(number)
        if raw == "":
            return []
        if self._shift and number == 2:  # MSH-2 holds the separators: never split it
            return [[raw]]
        seps = self._seps
        if raw.count(seps.repetition) >= MAX_REPETITIONS:
            raise ParseError(
                f"the field repeats {raw.count(seps.repetition) + 1:,} times; TrialBridge reads "
                f"at most {MAX_REPETITIONS:,} repetitions of a field",
                location=f"{self.location}.{number}",
                hint="the field is garbled (a repetition separator where it does not belong?): "
                "ask the lab to resend the message",
            )
        if seps.escape not in raw:  # nothing to unescape (most fields)
            return [rep.split(seps.component) for rep in raw.split(seps.repetition)]
        return [
            [self._unescape(c) for c in rep.split(seps.component)]
            for rep in raw.split(seps.repetition)
        ]

    def components(self, number: int) -> list[str]:
        """The components of a field's first repetition, unescaped (the others are not
        split: this is most of the reads)."""
        raw = self.raw(number)
        if raw == "":
            return []
        if self._shift and number == 2:
            return [raw]
        comps = raw.split(self._seps.repetition, 1)[0].split(self._seps.component)
        return comps if self._seps.escape not in raw else [self._unescape(c) for c in comps]

    def component(self, number: int, position: int = 1) -> str:
        """One component (1-based) of a field's first repetition, unescaped; '' if absent."""
        comps = self.components(number)
        return comps[position - 1].strip() if len(comps) >= position else ""

    def text(self, number: int) -> str:
        """A whole field as text: the first repetition, components joined by '^'."""
        return "^".join(self.components(number)).strip()

    def _unescape(self, text: str) -> str:
        if self._seps.escape not in text:
            return text
        return self._unescape_text(text)


def parse_segments(text: str, codec: str = "utf-8") -> list[Segment]:
    """Every segment of one message (CR-separated text), MSH first. ``codec`` is the
    character set the message was decoded with (hex escapes are decoded in it)."""
    lines = [line for line in text.split("\r") if line.strip()]
    if not lines or not lines[0].startswith("MSH"):
        raise ParseError("the message does not start with an MSH segment", location="MSH")
    lines[0] = _repair_encoding_characters(lines[0])
    seps = _separators(lines[0])
    unescape = partial(_unescape, seps=seps, codec=codec)
    counts: dict[str, int] = {}
    segments = []
    for line in lines:
        fields = line.split(seps.field)
        counts[fields[0]] = counts.get(fields[0], 0) + 1
        segments.append(Segment(fields, seps, unescape, counts[fields[0]]))
    return segments


def _separators(msh: str) -> Seps:
    """MSH-1 and MSH-2, checked: five different characters, none a letter, digit or blank
    (anything else makes every later split ambiguous)."""
    field = msh[3:4]
    if not field or field.isalnum() or field.isspace():
        raise ParseError(
            f"MSH-1 (the field separator) is {field or 'missing'!r}; it must be a mark such as '|'",
            location="MSH.1",
            hint="fix the separators at the sender",
        )
    encoding = msh[4:].split(field, 1)[0]
    if len(encoding) not in (4, 5):  # 5: v2.7's truncation character after the four
        raise ParseError(
            f"MSH-2 has {len(encoding)} encoding characters ({encoding[:10]!r}); four are "
            "needed (component, repetition, escape, subcomponent, as in '^~\\&')",
            location="MSH.2",
            hint="fix the encoding characters at the sender",
        )
    chosen = field + encoding[:4]
    if len(set(chosen)) != 5 or any(c.isalnum() or c.isspace() for c in chosen):
        raise ParseError(
            f"MSH-1 and MSH-2 ({chosen!r}) must be five different characters, none a letter, "
            "digit or blank (as in '|^~\\&')",
            location="MSH.2",
            hint="fix the separators at the sender",
        )
    return Seps(
        field,
        repetition=encoding[1],
        component=encoding[0],
        subcomponent=encoding[3],
        escape=encoding[2],
    )


def _repair_encoding_characters(msh: str) -> str:
    encoding = msh[4:].split(msh[3:4], 1)[0] if len(msh) > 4 else ""
    if encoding == _DOUBLED_ESCAPE:
        return msh[:4] + _STANDARD_ENCODING + msh[4 + len(_DOUBLED_ESCAPE) :]
    return msh


def _unescape(text: str, *, seps: Seps, codec: str) -> str:
    """A field's escape sequences replaced by what they stand for; a lone escape character
    (no closing one) and any sequence not understood are kept as sent.

    Split on the escape character, the odd pieces are the sequences (paired left to right);
    one pass, whatever the field's length (a 300 KB field of empty sequences: ~50 ms).
    """
    escape = seps.escape
    pieces = text.split(escape)
    lone = len(pieces) % 2 == 0  # an odd number of escape characters: the last has no pair
    tail = escape + pieces.pop() if lone else ""
    meanings: dict[str, str] = {}
    out = [pieces[0]]
    for i in range(1, len(pieces), 2):
        sequence = pieces[i]
        if sequence not in meanings:
            meaning = _meaning(sequence, seps, codec)
            meanings[sequence] = escape + sequence + escape if meaning is None else meaning
        out.append(meanings[sequence])
        out.append(pieces[i + 1])
    out.append(tail)
    return "".join(out)


def _meaning(sequence: str, seps: Seps, codec: str) -> str | None:
    """What one escape sequence (without its escape characters) stands for, or None."""
    if not sequence:
        return ""  # an empty sequence stands for nothing
    if len(sequence) == 1 and sequence in "FSTRE":
        return {
            "F": seps.field,
            "S": seps.component,
            "T": seps.subcomponent,
            "R": seps.repetition,
            "E": seps.escape,
        }[sequence]
    if sequence in _PLAIN:
        return _PLAIN[sequence]
    if match := _FORMAT.match(sequence):
        return _formatting(match[1], int(match[2] or 1))
    if match := _HEX.match(sequence):
        return _hex(match[1], codec)
    return None  # \Z..\ (locally defined), \C..\ / \M..\ (character set switches), typos


def _formatting(command: str, count: int) -> str:
    """.sp<n>: n line breaks; .sk<n>: n spaces; indentation (.in, .ti) has no plain-text form.
    The count has at most two digits (the pattern), so a field cannot be blown up."""
    if command == "sp":
        return "\n" * max(count, 1)
    if command == "sk":
        return " " * max(count, 0)
    return ""


def _hex(digits: str, codec: str) -> str | None:
    """\\Xdd..\\: bytes in the message's character set; kept as sent when they do not decode
    or hold a control character other than a line break or tab."""
    try:
        text = bytes.fromhex(digits).decode(codec)
    except (UnicodeError, LookupError):
        return None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return None if _HEX_CONTROL.search(text) else text


def patient_ids(pid: Segment) -> tuple[PatientIdentifier, ...]:
    ids = tuple(
        PatientIdentifier(
            value=rep[0].strip(),
            authority=_first_component(rep[3]) if len(rep) > 3 else "",
            type_code=rep[4].strip() if len(rep) > 4 else "",
        )
        for rep in pid.repetitions(3)
        if rep and rep[0].strip()
    )
    if not ids:
        raise ParseError(
            "PID-3 (patient identifier list) is empty",
            location=f"{pid.location}.3",
            hint="the LIS must send the patient's MRN with its assigning authority in PID-3",
        )
    return ids


def _first_component(text: str) -> str:
    # HD types (assigning authority) may carry subcomponents: namespace&universal id&type.
    return text.split("&", 1)[0].strip()
