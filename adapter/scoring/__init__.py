"""Stage "scores" in the flow: MELD, MELD-Na, MELD 3.0, Child-Pugh and ALBI for each trial
subject, computed from the results on the trial's FHIR server and written back as score
Observations.

* :mod:`.inputs` — lab results and assessments read from Observations (pure);
* :mod:`.assessments` — the codes of ascites, encephalopathy and dialysis assessments (pure);
* :mod:`.core` — occasions (pairing window), scores, withdrawal, age from birth year (pure);
* :mod:`.resources` — score Observations, the transaction and its Provenance (pure);
* :mod:`.shell` — :func:`recompute_subjects` and :func:`record_assessment` (FHIR I/O);
* :mod:`.settings` — the ``scoring:`` section of ``config/trialbridge.yaml``.

``recompute_subjects(client, registry, subject_ids)`` is what ``trialbridge push``, the
service's scheduled job and ``trialbridge scores recompute`` call. It is idempotent:
unchanged inputs give unchanged scores, and those are not written again.
"""

from adapter.scoring.assessments import Assessment
from adapter.scoring.settings import ScoringSettings, load_scoring_settings
from adapter.scoring.shell import (
    RecomputeSummary,
    ScoreLine,
    recompute_subjects,
    record_assessment,
)

__all__ = [
    "Assessment",
    "RecomputeSummary",
    "ScoreLine",
    "ScoringSettings",
    "load_scoring_settings",
    "recompute_subjects",
    "record_assessment",
]
