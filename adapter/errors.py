"""The one exception tree of TrialBridge.

    TrialBridgeError                 root: catch this at the CLI edge or a job boundary
    ├── ConfigError                  a config/ or mappings/ file is wrong (file, line)
    ├── MessageError                 an HL7v2 message cannot be used (message, segment, field)
    │   ├── DecodeError              bytes do not decode in the declared/forced charset
    │   ├── ParseError               structure is wrong (no MSH, no PID, bad field)
    │   └── MappingError             a result cannot be mapped (unknown code, bad unit, ...)
    ├── FhirError                    the FHIR server refused or failed (with its OperationOutcome)
    │   └── FhirUnavailableError     the server could not be reached at all
    ├── StoreError                   the state store could not be opened, read or written
    ├── StudyNotFoundError           the study asked for is not on the FHIR server
    ├── DevServerError               the local development FHIR server failed to start
    ├── SourceError                  a source (file drop, MLLP, LIS query) failed
    │   └── QueryError               the LIS refused a query or answered something unusable
    ├── ScoreInputError              a score input is malformed (unknown unit, wrong type)
    └── ExportError                  an export cannot be written as its format requires

Every message says what was wrong, where, and what to do. Library errors are mapped at the
boundary with ``raise ... from exc``.
"""

from __future__ import annotations


class TrialBridgeError(Exception):
    """Root of every error TrialBridge raises on purpose."""


class ConfigError(TrialBridgeError):
    """A configuration or mapping file is invalid."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")
        self.path = path
        self.line = line


class MessageError(TrialBridgeError):
    """An HL7v2 message (or part of it) cannot be used.

    ``location`` is in the standard's notation, e.g. ``OBX[3].5`` or ``MSH.18``.
    """

    def __init__(
        self,
        message: str,
        *,
        message_id: str | None = None,
        location: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.reason = message
        self.message_id = message_id
        self.location = location
        self.hint = hint
        super().__init__(self._render())

    def _render(self) -> str:
        parts = []
        if self.message_id:
            parts.append(f"message {self.message_id}")
        if self.location:
            parts.append(self.location)
        where = f"[{', '.join(parts)}] " if parts else ""
        hint = f" — {self.hint}" if self.hint else ""
        return f"{where}{self.reason}{hint}"

    def with_message_id(self, message_id: str | None) -> MessageError:
        """Return a copy of this error that names the message it came from."""
        clone = type(self)(
            self.reason, message_id=message_id, location=self.location, hint=self.hint
        )
        return clone


class DecodeError(MessageError):
    """The message bytes do not decode in the declared or forced character set."""


class ParseError(MessageError):
    """The message structure is not a usable ORU^R01."""


class MappingError(MessageError):
    """A result cannot be mapped to the study's analytes."""


def _transient(status: int | None) -> bool:
    """HTTP statuses worth trying again later: 429 and 5xx (but not 501/505)."""
    return status is not None and (status == 429 or (status >= 500 and status not in (501, 505)))


class FhirError(TrialBridgeError):
    """The FHIR server answered with an error.

    ``retryable`` says whether the same request may succeed later (connection errors, 429,
    5xx); ``retry_after`` is the server's ``Retry-After`` in seconds, when it sent one. The
    outbox uses both to schedule the next attempt; a 4xx other than 429 is never retryable.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        outcome: str | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
    ):
        self.status = status
        self.outcome = outcome
        self.retryable: bool = _transient(status) if retryable is None else retryable
        self.retry_after: float | None = retry_after
        detail = f" (HTTP {status})" if status is not None else ""
        text = f": {outcome}" if outcome else ""
        super().__init__(f"{message}{detail}{text}")

    @property
    def auth_failure(self) -> bool:
        """Whether our credentials were refused (401, or 403: a scope missing), so that
        nothing will be accepted until fhir.auth (or the client's registration) is fixed."""
        return self.status in (401, 403)


class FhirAuthError(FhirError):
    """The SMART token endpoint refused the client (wrong key, unknown ``kid``, scope not
    granted...): no request reaches the FHIR server until fhir.auth is fixed."""

    @property
    def auth_failure(self) -> bool:
        return True


class FhirUnavailableError(FhirError):
    """The FHIR server could not be reached (retryable unless the TLS set-up is wrong)."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message, retryable=retryable)


class StoreError(TrialBridgeError):
    """The state store could not be opened, read or written."""


class StudyNotFoundError(TrialBridgeError):
    """No ResearchStudy on the FHIR server has the study identifier asked for."""


class DevServerError(TrialBridgeError):
    """The local development FHIR server could not be started."""


class ScoreInputError(TrialBridgeError):
    """A clinical score was given an input it cannot read (unknown unit, wrong type).

    A missing or implausible value is not an error: the score is then reported as not
    computable, with the reason. This error is for inputs that are malformed, where going on
    would mean guessing what the caller meant.
    """


class SourceError(TrialBridgeError):
    """A source could not read its input or reach its peer (the LIS, a mounted share)."""


class QueryError(SourceError):
    """The LIS refused a query, or answered with something that is not a query response."""


class ExportError(TrialBridgeError):
    """An export (SDTM datasets) cannot be written as its format requires: a value too long
    for SAS XPORT v5, a character outside ASCII, a file that cannot be written."""
