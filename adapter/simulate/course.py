"""How a trial subject's liver disease runs: one severity number per visit, and the lab values
that follow from it (canonical units: U/L, mg/dL, g/dL, s, {INR}, mmol/L).

End-stage liver disease: bilirubin 1-15 mg/dL, albumin 2.2-3.8 g/dL, INR 1.1-3, creatinine
0.6-3 mg/dL, sodium 125-142 mmol/L, ALT/AST 20-200 U/L, ALP 60-400 U/L, PT 12-30 s. Severity
drifts over the 48 weeks: down for subjects who improve, up for those who worsen.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal

from adapter.simulate.catalog import ANALYTES, quantize


@dataclass(frozen=True)
class Course:
    """A subject's disease course: where it starts, where it heads, and personal traits."""

    severity: float  # 0 (compensated) .. 1 (dying) at baseline
    slope: float  # change of severity over 48 weeks
    kidney: float  # how much the kidneys suffer (hepatorenal tendency)
    alt: float  # the subject's usual ALT (U/L)
    ast_ratio: float  # AST/ALT (above 1 in cirrhosis)
    alp: float  # the subject's usual ALP (U/L)


def course(rng: random.Random, trend: str) -> Course:
    """A random course for a subject whose trend is improving, stable or worsening."""
    slope = {
        "improving": -rng.uniform(0.15, 0.4),
        "stable": rng.uniform(-0.08, 0.08),
        "worsening": rng.uniform(0.25, 0.5),
    }[trend]
    return Course(
        severity=rng.uniform(0.2, 0.7),
        slope=slope,
        kidney=rng.uniform(0.4, 1.3),
        alt=rng.uniform(25, 120),
        ast_ratio=rng.uniform(1.0, 1.9),
        alp=rng.uniform(80, 300),
    )


def severity(rng: random.Random, c: Course, week: float) -> float:
    """Severity at ``week`` (0..1), with visit-to-visit noise."""
    return _clip(c.severity + c.slope * min(week, 48) / 48 + rng.gauss(0, 0.04), 0.0, 1.0)


def values(rng: random.Random, c: Course, week: float) -> dict[str, Decimal]:
    """Canonical values of every analyte drawn at one visit."""
    b = severity(rng, c, week)
    inr = _clip(1.1 + 1.9 * b**1.2 + rng.gauss(0, 0.05), 1.1, 3.0)
    bilirubin = _clip((1 + 14 * b**1.6) * rng.uniform(0.9, 1.1), 1.0, 15.0)
    alt = _clip(c.alt * rng.uniform(0.75, 1.3), 20, 200)
    raw = {
        "alt": alt,
        "ast": _clip(alt * c.ast_ratio * rng.uniform(0.9, 1.1), 20, 200),
        "alp": _clip(c.alp * rng.uniform(0.8, 1.2), 60, 400),
        "bilirubin_total": bilirubin,
        "albumin": _clip(3.8 - 1.6 * b + rng.gauss(0, 0.1), 2.2, 3.8),
        "pt_seconds": _clip(12 + (inr - 1.1) * 18 / 1.9 + rng.gauss(0, 0.4), 12, 30),
        "inr": inr,
        "creatinine": _clip(0.6 + 2.4 * c.kidney * b**2.2 + rng.gauss(0, 0.05), 0.6, 3.0),
        "sodium": _clip(142 - 17 * b**1.3 + rng.gauss(0, 1.5), 125, 142),
        "ggt": rng.uniform(20, 300),
        "bilirubin_direct": bilirubin * rng.uniform(0.4, 0.7),
        "ammonia": _clip(30 + 80 * b + rng.gauss(0, 8), 15, 150),
    }
    return {key: canonical(key, value) for key, value in raw.items()}


def canonical(analyte: str, value: float) -> Decimal:
    """``value`` as an exact decimal in the analyte's canonical form's precision."""
    decimals = ANALYTES[analyte].forms[0].decimals
    return quantize(Decimal(repr(value)), decimals)


def _clip(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))
