"""The Provenance every transaction carries: which message the resources came from, which
TrialBridge and which mappings made them (http://hl7.org/fhir/R4/provenance.html).

A research auditor goes from any Observation to ``Provenance?target=Observation/<id>``, and
from its entity identifier (sender / MSH-10 / sha256 of the bytes) to the message in the
adapter's inbox.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from adapter import __version__

SOFTWARE_SYSTEM = "urn:trialbridge:software"
MESSAGE_SYSTEM = "urn:trialbridge:lis-message"
PROVENANCE_SYSTEM = "urn:trialbridge:provenance"
_ACTIVITY = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
_AGENT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"


@dataclass(frozen=True, slots=True)
class MessageSource:
    """Where one message came from, as the inbox recorded it."""

    sender: str  # MSH-3@MSH-4
    control_id: str  # MSH-10
    sha256: str  # of the message bytes as received
    received_at: str  # FHIR instant: when TrialBridge received it
    mappings_version: str  # MappingSet.provenance_version

    def message_key(self) -> str:
        return f"{self.sender}/{self.control_id}/sha256:{self.sha256}"


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def trialbridge_activity() -> dict[str, Any]:
    """Provenance.activity and .agent: TrialBridge, at this version, assembled the targets."""
    return {
        "activity": {"coding": [{"system": _ACTIVITY, "code": "UPDATE"}]},
        "agent": [
            {
                "type": {"coding": [{"system": _AGENT_TYPE, "code": "assembler"}]},
                "who": {
                    "identifier": {
                        "system": SOFTWARE_SYSTEM,
                        "value": f"trialbridge/{__version__}",
                    },
                    "display": f"TrialBridge {__version__}",
                },
            }
        ],
    }


def provenance(source: MessageSource, targets: list[str]) -> dict[str, Any]:
    """A Provenance targeting the given references (fullUrls of the transaction's entries)."""
    return {
        "resourceType": "Provenance",
        "target": [{"reference": target} for target in targets],
        "recorded": source.received_at,
        "policy": [f"urn:trialbridge:mappings:{source.mappings_version}"],
        **trialbridge_activity(),
        "entity": [
            {
                "role": "source",
                "what": {
                    "identifier": {"system": MESSAGE_SYSTEM, "value": source.message_key()},
                    "display": f"ORU^R01 {source.control_id} from {source.sender}",
                },
            }
        ],
    }
