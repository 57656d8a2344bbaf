"""Survival by arm: Kaplan-Meier (lifelines) and the estimate at one year with its 95% CI.

Pure. Each subject contributes the time from day 0 to death (an event) or to the last date
known alive (censored), as :func:`adapter.report.tables.survival_time` defines it. The
estimate at the horizon is the product-limit step value there; its confidence interval is
lifelines' default, the exponential Greenwood ("log-log") interval. It is left blank when no
subject of the arm was followed up to the horizon, so a short follow-up is never shown as a
one-year survival.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
from lifelines import KaplanMeierFitter

ONE_YEAR = 365
SURVIVAL_COLUMNS = [
    "arm", "n", "events", "censored", "horizon_days", "at_risk", "survival", "ci_lower",
    "ci_upper",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Curve:
    """One arm's Kaplan-Meier step function and its confidence band."""

    arm: str
    times: tuple[float, ...]
    survival: tuple[float, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    censored_times: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class ArmSurvival:
    """One arm: counts, the estimate at the horizon and its CI (None: not followed so long)."""

    arm: str
    n: int
    events: int
    at_risk: int
    estimate: float | None
    lower: float | None
    upper: float | None
    curve: Curve | None


def survival_by_arm(
    times: Sequence[tuple[str, int, bool]], arms: Sequence[str], horizon: int = ONE_YEAR
) -> list[ArmSurvival]:
    """Per arm (in ``arms`` order), from ``(arm, days, died)`` per subject."""
    return [arm_survival(arm, [(d, e) for a, d, e in times if a == arm], horizon) for arm in arms]


def arm_survival(arm: str, times: Sequence[tuple[int, bool]], horizon: int) -> ArmSurvival:
    """Kaplan-Meier for one arm's ``(days, died)`` and its value at ``horizon`` days."""
    events = sum(1 for _, died in times if died)
    at_risk = sum(1 for days, _ in times if days >= horizon)
    if not times:
        return ArmSurvival(arm, 0, 0, 0, None, None, None, None)
    kmf = KaplanMeierFitter(label="km")
    kmf.fit([d for d, _ in sorted(times)], [int(e) for _, e in sorted(times)])
    surv = kmf.survival_function_["km"]
    band = kmf.confidence_interval_
    curve = Curve(
        arm,
        tuple(float(t) for t in surv.index),
        tuple(float(v) for v in surv),
        tuple(float(v) for v in band.iloc[:, 0]),
        tuple(float(v) for v in band.iloc[:, 1]),
        tuple(float(d) for d, died in sorted(times) if not died),
    )
    if max(d for d, _ in times) < horizon:
        return ArmSurvival(arm, len(times), events, at_risk, None, None, None, curve)
    step = surv.index[surv.index <= horizon].max()
    return ArmSurvival(
        arm,
        len(times),
        events,
        at_risk,
        float(surv.loc[step]),
        float(band.loc[step].iloc[0]),
        float(band.loc[step].iloc[1]),
        curve,
    )


def survival_table(results: Sequence[ArmSurvival], horizon: int = ONE_YEAR) -> pd.DataFrame:
    """survival.csv: one row per arm."""
    rows = [
        {
            "arm": r.arm,
            "n": r.n,
            "events": r.events,
            "censored": r.n - r.events,
            "horizon_days": horizon,
            "at_risk": r.at_risk,
            "survival": r.estimate,
            "ci_lower": r.lower,
            "ci_upper": r.upper,
        }
        for r in results
    ]
    # Floats throughout (NaN, written blank, where there is no estimate).
    frame = pd.DataFrame(rows, columns=SURVIVAL_COLUMNS)
    return frame.astype({"survival": "float64", "ci_lower": "float64", "ci_upper": "float64"})
