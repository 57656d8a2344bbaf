"""Stage "toxicity": CTCAE v5.0 grades of laboratory results. Pure (no I/O).

- :mod:`adapter.toxicity.ctcae` - one result -> its grade (0-4) or why there is none, one rule
  per CTCAE term, each quoting the CTCAE v5.0 text it implements;
- :mod:`adapter.toxicity.series` - a subject's results of one test: the baseline, then each
  result's grade (the baseline rules need it).

Terms are found by the analyte's LOINC code (the code every TrialBridge Observation carries), so
any study that collects these analytes is graded the same way.
"""

from __future__ import annotations

from adapter.toxicity.ctcae import (
    ALB,
    ALP,
    ALT,
    AST,
    BILI,
    CREAT,
    CTCAE_VERSION,
    INR,
    SODIUM,
    Context,
    Grade,
    Value,
    grade,
)
from adapter.toxicity.series import Point, baseline_index, grade_series, is_post_baseline

TERM_BY_LOINC: dict[str, str] = {
    "1742-6": ALT,  # Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma
    "1920-8": AST,  # Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma
    "6768-6": ALP,  # Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma
    "1975-2": BILI,  # Bilirubin.total [Mass/volume] in Serum or Plasma
    "1751-7": ALB,  # Albumin [Mass/volume] in Serum or Plasma
    "6301-6": INR,  # INR in Platelet poor plasma by Coagulation assay
    "2160-0": CREAT,  # Creatinine [Mass/volume] in Serum or Plasma
    "2951-2": SODIUM,  # Sodium [Moles/volume] in Serum or Plasma
}
"""The CTCAE term that grades each analyte (by its LOINC code); others are not graded."""

__all__ = [
    "CTCAE_VERSION",
    "TERM_BY_LOINC",
    "Context",
    "Grade",
    "Point",
    "Value",
    "baseline_index",
    "grade",
    "grade_series",
    "is_post_baseline",
]
