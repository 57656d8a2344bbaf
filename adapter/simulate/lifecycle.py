"""The result lifecycle a real LIS shows: a preliminary report followed by the final one, a
corrected result, a cancelled result and a result entered in error (OBX-11 P, F, C, X, W).

Each case is chosen among the trial's visit messages, so that it matters downstream. Cases
are named ``FILLER`` (an order) or ``FILLER/CODE`` (one result of an order).
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from adapter.simulate.catalog import flag, form_of, quantize
from adapter.simulate.model import Message, Order, Result

Cases = dict[str, list[str]]
CHEMISTRY = ("CHEM", "LIVCOAG")


def apply(rng: random.Random, messages: list[Message]) -> tuple[list[Message], Cases]:
    """Add the lifecycle cases to numbered ``messages``; returns them and where they are."""
    eligible = [i for i, m in enumerate(messages) if m.kind == "visit" and _chemistry(m)]
    prelim, corrected, cancelled, wrong = rng.sample(eligible, 4)
    out = list(messages)
    cases: Cases = {}
    out[cancelled], cases["cancelled"] = cancel(out[cancelled], "sodium")
    extra, cases["preliminary_then_final"] = preliminary(rng, out[prelim])
    fixed, cases["corrected"] = correct(rng, out[corrected], "albumin")
    error, cases["entered_in_error"] = entered_in_error(rng, out[wrong], "creatinine")
    return [*out, extra, fixed, error], cases


def _chemistry(message: Message) -> Order | None:
    return next((o for o in message.orders if o.service_code in CHEMISTRY), None)


def _result(order: Order, analyte: str) -> Result:
    return next(r for r in order.results if r.analyte == analyte)


def _alone(rng: random.Random, message: Message, order: Order, days: tuple[int, int]) -> Message:
    """``order`` re-sent alone some days after ``message``, in office hours."""
    later = message.sent + timedelta(days=rng.randint(*days), hours=rng.randint(1, 6))
    order = replace(order, reported=later)
    return replace(message, orders=(order,), sent=later + timedelta(minutes=rng.randint(0, 3)))


def preliminary(rng: random.Random, message: Message) -> tuple[Message, list[str]]:
    """A preliminary report of the chemistry order, sent well before its final."""
    order = _chemistry(message)
    assert order is not None
    reported = order.received + timedelta(minutes=rng.randint(30, 50))
    early = replace(
        order,
        status="P",
        reported=reported,
        results=tuple(replace(r, status="P", analysed=None) for r in order.results),
    )
    return replace(message, orders=(early,), sent=reported + timedelta(minutes=1)), [order.filler]


def correct(rng: random.Random, message: Message, analyte: str) -> tuple[Message, list[str]]:
    """The chemistry order re-sent a few days later with one result corrected (OBX-11 C)."""
    order = _chemistry(message)
    assert order is not None
    old = _result(order, analyte)
    form = form_of(old)
    value = quantize(Decimal(old.value) * Decimal("0.88"), form.decimals)
    new = replace(
        old,
        value=str(value),
        flag=flag(value, form),
        status="C",
        note=f"Corrected result: previously reported as {old.value} {old.unit}",
    )
    results = tuple(new if r is old else r for r in order.results)
    fixed = replace(order, status="C", results=results)
    return _alone(rng, message, fixed, (1, 3)), [f"{order.filler}/{old.code}"]


def cancel(message: Message, analyte: str) -> tuple[Message, list[str]]:
    """One result of the chemistry order cancelled in place (OBX-11 X, no value)."""
    order = _chemistry(message)
    assert order is not None
    old = _result(order, analyte)
    gone = replace(
        old,
        value="",
        unit="",
        flag="",
        status="X",
        value_type="NM",
        note="Specimen haemolysed & lipaemic: result cancelled, please recollect",
    )
    results = tuple(gone if r is old else r for r in order.results)
    orders = tuple(replace(o, results=results) if o is order else o for o in message.orders)
    return replace(message, orders=orders), [f"{order.filler}/{old.code}"]


def entered_in_error(
    rng: random.Random, message: Message, analyte: str
) -> tuple[Message, list[str]]:
    """A result re-sent days later as entered in error (OBX-11 W): wrong patient."""
    order = _chemistry(message)
    assert order is not None
    old = _result(order, analyte)
    wrong = replace(old, status="W", note="Reported on the wrong patient: disregard this result")
    return (
        _alone(rng, message, replace(order, status="C", results=(wrong,)), (2, 5)),
        [f"{order.filler}/{old.code}"],
    )
