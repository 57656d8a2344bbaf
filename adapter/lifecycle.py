"""Statuses move forward only: a message's Observations reconciled with what the FHIR server
already holds, before the transaction is sent.

Pure core (:func:`reconcile`) and a thin shell (:func:`stored_for`). DESIGN.md's
table ranks the statuses: registered < preliminary < final < corrected/amended < cancelled <
entered-in-error. A result ranking lower than the stored one (a preliminary arriving after
the final) is skipped, never written. OBX-11 ``U`` (final, no value sent) finalises the stored
preliminary and keeps its value.

Check-then-write is not atomic against a second writer of the same result; one writer per
subject (the service's job) keeps it safe.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from adapter.build import search_token
from adapter.fhir_client import FhirClient
from adapter.mapping.status import FHIR_RANK

# Identifiers per lookup search: keeps the URL short (each token is ~80 characters).
TOKENS_PER_SEARCH = 100
_VALUE_KEYS = ("valueQuantity", "valueString", "valueCodeableConcept", "component")


@dataclass(frozen=True, slots=True)
class Skipped:
    """An Observation left out of the transaction, and why."""

    identifier: str
    reason: str


def identifier_value(resource: Mapping[str, Any]) -> str:
    """The first identifier's value (TrialBridge writes exactly one)."""
    return str(resource["identifier"][0]["value"])


def reconcile(
    bundle: dict[str, Any], stored: Mapping[str, dict[str, Any]]
) -> tuple[dict[str, Any], list[Skipped]]:
    """The bundle to send given the stored Observations (by identifier value), and what was
    skipped. The input bundle is not changed; it is itself returned when it goes as it is
    (so its stored text can be sent without writing it again)."""
    entries: list[dict[str, Any]] = []
    skipped: list[Skipped] = []
    left_out: set[str] = set()
    changed = False
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] != "Observation":
            entries.append(entry)
            continue
        key = identifier_value(resource)
        decided, reason = _decide(resource, stored.get(key))
        if decided is None:
            skipped.append(Skipped(key, reason))
            left_out.add(entry.get("fullUrl", ""))
        else:
            changed = changed or decided is not resource
            entries.append({**entry, "resource": decided})
    if not changed and not skipped:
        return bundle, skipped
    return {**bundle, "entry": [_without_targets(e, left_out) for e in entries]}, skipped


def _without_targets(entry: dict[str, Any], left_out: set[str]) -> dict[str, Any]:
    """A Provenance no longer targets what was left out of the transaction."""
    resource = entry["resource"]
    if resource["resourceType"] != "Provenance" or not left_out:
        return entry
    targets = [t for t in resource["target"] if t["reference"] not in left_out]
    return {**entry, "resource": {**resource, "target": targets}}


def _decide(
    incoming: dict[str, Any], current: dict[str, Any] | None
) -> tuple[dict[str, Any] | None, str]:
    finalises = _finalises_stored(incoming)
    if current is None:
        if finalises:
            return None, "OBX-11 U finalises a stored result, but none is stored"
        return incoming, ""
    new, old = incoming["status"], current["status"]
    if FHIR_RANK[new] < FHIR_RANK.get(old, 0):
        return None, f"the stored result is {old}; a {new} result does not overwrite it"
    if finalises:
        return _finalised(current, incoming), ""
    return incoming, ""


def _finalises_stored(observation: Mapping[str, Any]) -> bool:
    """A final result with neither value nor absent reason came from OBX-11 U."""
    return (
        observation["status"] == "final"
        and "dataAbsentReason" not in observation
        and not any(key in observation for key in _VALUE_KEYS)
    )


def _finalised(current: dict[str, Any], incoming: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(current)
    merged.pop("meta", None)
    merged.pop("id", None)
    merged["status"] = "final"
    for key in ("issued", "note", "interpretation"):
        if key in incoming:
            merged[key] = incoming[key]
    merged["subject"] = incoming["subject"]
    return merged


def stored_for(
    client: FhirClient, bundles: Sequence[Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """The server's current Observations for every identifier in ``bundles`` (a subject's
    claimed transactions): one search per :data:`TOKENS_PER_SEARCH` identifiers."""
    tokens = sorted({token for bundle in bundles for token in _tokens(bundle)})
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(tokens), TOKENS_PER_SEARCH):
        chunk = ",".join(tokens[start : start + TOKENS_PER_SEARCH])
        for observation in client.search("Observation", f"identifier={chunk}&_count=1000"):
            found[identifier_value(observation)] = observation
    return found


def remember(stored: dict[str, dict[str, Any]], sent: Mapping[str, Any]) -> None:
    """After ``sent`` was written, its Observations are what the server holds (so the same
    subject's next transaction is reconciled against them without asking again)."""
    for entry in sent["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "Observation":
            stored[identifier_value(resource)] = resource


def _tokens(bundle: Mapping[str, Any]) -> list[str]:
    return [
        search_token(identifier["system"], identifier["value"])
        for entry in bundle["entry"]
        if entry["resource"]["resourceType"] == "Observation"
        for identifier in entry["resource"]["identifier"][:1]
    ]
