"""CLI command ``score``: one liver score from values typed on the command line."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import click

from adapter.cli._common import cli_errors, echo_json
from adapter.scores import (
    AlbiResult,
    ChildPughResult,
    Meld3Result,
    MeldResult,
    albi,
    child_pugh,
    meld,
    meld_3,
    meld_na,
)

Result = MeldResult | Meld3Result | ChildPughResult | AlbiResult

_QUANTITY = re.compile(
    r"^\s*(?P<value>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(?P<unit>\S*)\s*$"
)

# Which options each score reads; any other option given is refused, not silently ignored.
_INPUTS: Mapping[str, tuple[str, ...]] = {
    "meld": ("bilirubin", "inr", "creatinine", "dialysis"),
    "meld-na": ("bilirubin", "inr", "creatinine", "sodium", "dialysis"),
    "meld-3": ("bilirubin", "inr", "creatinine", "sodium", "albumin", "sex", "age", "dialysis"),
    "child-pugh": (
        "bilirubin",
        "albumin",
        "inr",
        "pt_prolonged",
        "ascites",
        "encephalopathy",
        "cholestatic",
    ),
    "albi": ("bilirubin", "albumin"),
}


def _decimal(text: str, option: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation as exc:
        raise click.BadParameter(f"{text!r} is not a number", param_hint=option) from exc


def _quantity(text: str | None, option: str) -> tuple[Decimal, str] | None:
    """``"1.9 mg/dL"`` → ``(Decimal("1.9"), "mg/dL")``; the unit is checked by the library."""
    if text is None:
        return None
    match = _QUANTITY.match(text)
    if match is None or not match["unit"]:
        raise click.BadParameter(f"expected 'VALUE UNIT', got {text!r}", param_hint=option)
    return _decimal(match["value"], option), match["unit"]


def _inr(text: str | None) -> Decimal | tuple[Decimal, str] | None:
    if text is None:
        return None
    parsed = _QUANTITY.match(text)
    if parsed is not None and parsed["unit"]:
        return _decimal(parsed["value"], "--inr"), parsed["unit"]
    return _decimal(text.strip(), "--inr")


def _compute(name: str, given: Mapping[str, Any]) -> Result:
    labs = {
        "bilirubin": _quantity(given["bilirubin"], "--bilirubin"),
        "creatinine": _quantity(given["creatinine"], "--creatinine"),
        "sodium": _quantity(given["sodium"], "--sodium"),
        "albumin": _quantity(given["albumin"], "--albumin"),
    }
    inr = _inr(given["inr"])
    calls: Mapping[str, Callable[[], Result]] = {
        "meld": lambda: meld(
            bilirubin=labs["bilirubin"],
            inr=inr,
            creatinine=labs["creatinine"],
            dialysis=given["dialysis"],
        ),
        "meld-na": lambda: meld_na(
            bilirubin=labs["bilirubin"],
            inr=inr,
            creatinine=labs["creatinine"],
            sodium=labs["sodium"],
            dialysis=given["dialysis"],
        ),
        "meld-3": lambda: meld_3(
            bilirubin=labs["bilirubin"],
            inr=inr,
            creatinine=labs["creatinine"],
            sodium=labs["sodium"],
            albumin=labs["albumin"],
            sex=given["sex"],
            age_years=given["age"],
            dialysis=given["dialysis"],
        ),
        "child-pugh": lambda: child_pugh(
            bilirubin=labs["bilirubin"],
            albumin=labs["albumin"],
            inr=inr,
            pt_seconds_prolonged=_quantity(given["pt_prolonged"], "--pt-prolonged"),
            ascites=given["ascites"],
            encephalopathy=given["encephalopathy"],
            cholestatic=given["cholestatic"],
        ),
        "albi": lambda: albi(bilirubin=labs["bilirubin"], albumin=labs["albumin"]),
    }
    return calls[name]()


def _refuse_unused(name: str, given: Mapping[str, Any]) -> None:
    unused = [
        key
        for key, value in given.items()
        if value is not None and value is not False and key not in _INPUTS[name]
    ]
    if unused:
        options = ", ".join("--" + key.replace("_", "-") for key in unused)
        raise click.UsageError(f"{name} does not use {options}")


def _describe(result: Result) -> str:
    if not result.computable:
        return f"{result.formula}: not computable — {result.reason}"
    if isinstance(result, Meld3Result):
        return f"{result.formula}: {result.score} (uncapped {result.score_uncapped})"
    if isinstance(result, ChildPughResult):
        return f"{result.formula}: {result.score}, class {result.klass}"
    if isinstance(result, AlbiResult):
        return f"{result.formula}: {result.score:.2f}, grade {result.grade}"
    return f"{result.formula}: {result.score}"


_VALUE_UNIT = '"VALUE UNIT"'


@click.command("score")
@click.argument("name", type=click.Choice(list(_INPUTS)))
@click.option("--bilirubin", metavar=_VALUE_UNIT, help="Total bilirubin: mg/dL or umol/L.")
@click.option("--inr", metavar="VALUE", help="INR (a number, or 'VALUE {INR}').")
@click.option("--creatinine", metavar=_VALUE_UNIT, help="Creatinine: mg/dL or umol/L.")
@click.option("--sodium", metavar=_VALUE_UNIT, help="Sodium: mmol/L or mEq/L.")
@click.option("--albumin", metavar=_VALUE_UNIT, help="Albumin: g/dL or g/L.")
@click.option(
    "--pt-prolonged", metavar='"VALUE s"', help="PT seconds over control (Child-Pugh, no INR)."
)
@click.option("--sex", metavar="F|M", help="Sex (MELD 3.0).")
@click.option("--age", type=int, metavar="YEARS", help="Age in whole years (MELD 3.0).")
@click.option(
    "--dialysis/--no-dialysis",
    default=None,
    help="Two or more dialyses or 24 h CVVHD in the prior week; unset means unknown.",
)
@click.option("--ascites", metavar="none|mild|moderate-severe", help="Ascites (Child-Pugh).")
@click.option(
    "--encephalopathy",
    metavar='none|"grade 1-2"|"grade 3-4"',
    help="Hepatic encephalopathy (Child-Pugh).",
)
@click.option("--cholestatic", is_flag=True, help="PBC/PSC bilirubin bands (Child-Pugh).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def score(name: str, as_json: bool, **given: Any) -> None:
    """Compute one liver score NAME from values given as options.

    NAME is one of meld, meld-na, meld-3, child-pugh, albi. A missing or unusable value makes
    the score "not computable" with the reason (exit status 0); an unknown unit is an error.

    \b
    Example:
      trialbridge score meld --bilirubin "1.9 mg/dL" --inr 1.2 \\
          --creatinine "115 umol/L" --no-dialysis --json
    """
    _refuse_unused(name, given)
    with cli_errors():
        result = _compute(name, given)
    if as_json:
        echo_json({"name": name, **dataclasses.asdict(result)})
    else:
        click.echo(_describe(result))


COMMANDS: list[click.Command] = [score]
