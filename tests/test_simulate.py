"""The sample LIS feed: repeatable, parseable, and carrying every case later stages need."""

from __future__ import annotations

import csv
import json
import re
from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import hl7
import pytest
import yaml
from click.testing import CliRunner

from adapter.cli import main
from adapter.simulate import SimConfig, simulate, write_feed
from adapter.simulate.catalog import ANALYTES, STUDY_ANALYTES, UNMAPPED_CODES
from adapter.simulate.model import Feed
from adapter.simulate.trial import SCHEDULE

MAPPINGS = Path(__file__).resolve().parent.parent / "mappings" / "analytes.yaml"
WINDOWS = {name: (target + start, target + end) for name, target, start, end in SCHEDULE}
ESLD_RANGES = {  # canonical units
    "bilirubin_total": (1, 15),
    "albumin": (2.2, 3.8),
    "inr": (1.1, 3),
    "creatinine": (0.6, 3),
    "sodium": (125, 142),
    "alt": (20, 200),
    "ast": (20, 200),
    "alp": (60, 400),
    "pt_seconds": (12, 30),
}


@pytest.fixture(scope="module")
def feed() -> Feed:
    return simulate(SimConfig(seed=7))


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory, feed: Feed) -> Path:
    folder = tmp_path_factory.mktemp("feed")
    write_feed(feed, folder)
    return folder


def messages_in(text: str) -> list[str]:
    """The ORU^R01 messages of a file, batch envelope (FHS/BHS/BTS/FTS) removed."""
    segments = [s for s in text.split("\r") if s and s[:3] not in {"FHS", "BHS", "BTS", "FTS"}]
    starts = [i for i, s in enumerate(segments) if s.startswith("MSH|")]
    return [
        "\r".join(segments[a:b]) for a, b in zip(starts, [*starts[1:], len(segments)], strict=True)
    ]


def parse_all(out: Path) -> list[tuple[str, hl7.Message]]:
    """Every message of every file, in file order."""
    found = []
    for path in sorted(out.glob("*.hl7")):
        for text in messages_in(path.read_bytes().decode("utf-8")):
            found.append((path.name, hl7.parse(text)))
    return found


def field(segment: hl7.Segment, number: int) -> str:
    return str(segment[number]) if len(segment) > number else ""


def obx_rows(found: list[tuple[str, hl7.Message]]) -> list[dict[str, str]]:
    """Every OBX with its file, message, patient and order."""
    rows = []
    for name, message in found:
        mrn = str(message.segment("PID")[3][0][0])
        filler = ""
        for seg in message:
            kind = str(seg[0])
            if kind == "OBR":
                filler, obr_status = str(seg[3][0][0]), field(seg, 25)
            if kind == "OBX":
                rows.append(
                    {
                        "file": name,
                        "msh10": field(message.segment("MSH"), 10),
                        "mrn": mrn,
                        "filler": filler,
                        "obr25": obr_status,
                        "code": str(seg[3][0][0]),
                        "system": str(seg[3][0][2]),
                        "sub": field(seg, 4),
                        "type": field(seg, 2),
                        "value": field(seg, 5),
                        "unit": field(seg, 6),
                        "range": field(seg, 7),
                        "flag": field(seg, 8),
                        "status": field(seg, 11),
                        "time": field(seg, 14),
                    }
                )
    return rows


@pytest.fixture(scope="module")
def found(out: Path) -> list[tuple[str, hl7.Message]]:
    return parse_all(out)


@pytest.fixture(scope="module")
def rows(found: list[tuple[str, hl7.Message]]) -> list[dict[str, str]]:
    return obx_rows(found)


def enrolment(out: Path) -> list[dict[str, str]]:
    with (out / "enrolment.csv").open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


# -- repeatable ----------------------------------------------------------------------------


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_same_seed_gives_byte_identical_files(tmp_path: Path, out: Path) -> None:
    write_feed(simulate(SimConfig(seed=7)), tmp_path / "again")
    assert _tree(tmp_path / "again") == _tree(out)


def test_another_seed_gives_another_feed(tmp_path: Path, out: Path) -> None:
    write_feed(simulate(SimConfig(seed=8)), tmp_path / "other")
    assert _tree(tmp_path / "other") != _tree(out)
    assert (tmp_path / "other" / "enrolment.csv").read_bytes() != (
        out / "enrolment.csv"
    ).read_bytes()


# -- HL7 form ------------------------------------------------------------------------------


def test_every_file_parses_as_oru_r01(feed: Feed, found: list[tuple[str, hl7.Message]]) -> None:
    assert len(found) == len(feed.messages) > 1000
    for _, message in found:
        msh = message.segment("MSH")
        assert field(msh, 9) == "ORU^R01^ORU_R01"
        assert field(msh, 12) == "2.5.1"
        assert (field(msh, 3), field(msh, 4)) == ("NTC-LIS^^", "NTCH^^")
        assert message.segment("PID") and message.segment("OBR")


def test_segments_end_with_cr_only(out: Path) -> None:
    for path in out.glob("*.hl7"):
        data = path.read_bytes()
        assert b"\n" not in data and data.endswith(b"\r")


def test_control_ids_unique_and_files_sorted_in_sending_order(
    found: list[tuple[str, hl7.Message]],
) -> None:
    ids = [field(m.segment("MSH"), 10) for _, m in found]
    assert len(set(ids)) == len(ids)
    sent = [datetime.strptime(field(m.segment("MSH"), 7), "%Y%m%d%H%M%S%z") for _, m in found]
    assert sent == sorted(sent)
    for name, _ in found:
        assert re.fullmatch(r"\d{4,}_NTC\d{8}(_batch)?\.hl7", name)
    assert all(name.split("_")[1].removesuffix(".hl7") in ids for name, _ in found)


def test_one_batch_file_and_several_multi_message_files(out: Path) -> None:
    batches = [p for p in out.glob("*.hl7") if p.read_bytes().startswith(b"FHS|")]
    assert len(batches) == 1
    text = batches[0].read_bytes().decode("utf-8")
    segments = [s for s in text.split("\r") if s]
    assert [s[:3] for s in segments[:2]] == ["FHS", "BHS"]
    assert [s[:3] for s in segments[-2:]] == ["BTS", "FTS"]
    assert segments[-2] == f"BTS|{len(messages_in(text))}" and len(messages_in(text)) >= 2
    multi = [p for p in out.glob("*.hl7") if len(messages_in(p.read_bytes().decode("utf-8"))) > 1]
    assert len(multi) > 10


def test_charset_declared_on_some_files_and_undeclared_files_are_ascii(out: Path) -> None:
    declared = 0
    for path in out.glob("*.hl7"):
        text = path.read_bytes().decode("utf-8")
        charsets = {field(hl7.parse(m).segment("MSH"), 18) for m in messages_in(text)}
        assert len(charsets) == 1
        if charsets == {"UNICODE UTF-8"}:
            declared += 1
        else:
            assert text.isascii(), path.name
    assert 0 < declared < len(list(out.glob("*.hl7")))


def test_times_carry_the_hospital_offset(out: Path, rows: list[dict[str, str]]) -> None:
    assert all(r["time"].endswith("+0800") and len(r["time"]) == 19 for r in rows)
    text = "".join(p.read_bytes().decode("utf-8") for p in sorted(out.glob("*.hl7"))[:50])
    assert re.search(r"\|F\|\|\|\d{14}\+0800\|\|\|\|\|\d{14}\+0800", text), "OBX-19 sometimes"


def test_filler_numbers_have_the_lis_authority(found: list[tuple[str, hl7.Message]]) -> None:
    for _, message in found[:200]:
        for obr in message.segments("OBR"):
            assert re.fullmatch(r"\d{6}-\d{4}\^NTC-LIS", field(obr, 3))


# -- the trial -----------------------------------------------------------------------------


def test_enrolment_lists_22_subjects_in_two_equal_arms(out: Path) -> None:
    rows = enrolment(out)
    assert [r["subject_id"] for r in rows] == [f"DDSC-{i:03d}" for i in range(1, 23)]
    assert sorted(r["arm"] for r in rows) == ["low-dose"] * 11 + ["medium-high-dose"] * 11
    for r in rows:
        consent = date.fromisoformat(r["consent_date"])
        infusions = [date.fromisoformat(d) for d in r["infusion_dates"].split(";")]
        age = consent.year - int(r["birth_year"])
        assert 18 <= age - 1 and age <= 80  # noqa: SIM300 - reads as a range
        assert (
            consent < infusions[0] and infusions[0].year == 2024 and infusions == sorted(infusions)
        )
        assert r["sex"] in {"F", "M"} and r["mrn_authority"] == "NTCH"
    assert 1 <= sum(bool(r["death_date"]) for r in rows) <= 2


def test_enrolment_matches_the_messages(
    out: Path, feed: Feed, found: list[tuple[str, hl7.Message]]
) -> None:
    subjects = {r["mrn"]: r for r in enrolment(out)}
    seen: set[str] = set()
    for _, message in found:
        pid3 = message.segment("PID")[3]
        mrn, authority = str(pid3[0][0]), str(pid3[0][3])
        if mrn in subjects and authority == "NTCH":
            seen.add(mrn)
            assert str(message.segment("PID")[8]) == subjects[mrn]["sex"]
    assert seen == set(subjects)
    trial_messages = sum(1 for _, m in feed.messages if m.subject_id)
    assert (
        sum(
            1
            for _, m in feed.messages
            if m.patient.mrn in subjects and m.patient.authority == "NTCH"
        )
        == trial_messages
    )


def test_visits_fall_in_their_windows(feed: Feed) -> None:
    day0 = {s.subject_id: s.day0 for s in feed.subjects}
    visits = 0
    for _, message in feed.messages:
        if message.kind != "visit":
            continue
        visits += 1
        low, high = WINDOWS[message.visit]
        for order in message.orders:
            day = (order.collected.date() - day0[message.subject_id]).days
            assert low <= day <= high, (message.subject_id, message.visit, day)
    assert visits >= 150


def test_visits_csv_is_the_truth_of_the_schedule(out: Path, feed: Feed) -> None:
    with (out / "visits.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    by_subject = defaultdict(list)
    for r in rows:
        low, high = WINDOWS[r["visit"]]
        assert low <= int(r["study_day"]) <= high
        by_subject[r["subject_id"]].append(r["visit"])
    deaths = {r["subject_id"]: r["death_date"] for r in enrolment(out) if r["death_date"]}
    for subject, names in by_subject.items():
        if subject not in deaths:
            assert names == [name for name, *_ in SCHEDULE]
        else:
            assert "week48" not in names and "week0" in names
    assert len(by_subject) == 22


def test_no_results_after_death(feed: Feed) -> None:
    deaths = {s.subject_id: s.death_date for s in feed.subjects if s.death_date}
    assert deaths
    for _, message in feed.messages:
        if message.subject_id in deaths:
            assert all(o.collected.date() < deaths[message.subject_id] for o in message.orders)


def test_each_visit_has_the_study_panel(feed: Feed) -> None:
    panel: dict[tuple[str, str], set[str]] = defaultdict(set)
    for _, m in feed.messages:
        if m.kind == "visit":
            panel[m.subject_id, m.visit] |= {r.analyte for o in m.orders for r in o.results}
    assert all(set(STUDY_ANALYTES) <= found for found in panel.values())


def _canonical(value: str, unit: str, ref_range: str, analyte: str) -> Decimal:
    for form in ANALYTES[analyte].forms:
        if form.unit.replace("µ", "u") == unit.replace("µ", "u") and form.ref_range == ref_range:
            return Decimal(value.lstrip("^")) / form.factor
    raise AssertionError((analyte, unit, ref_range))


def test_trial_values_are_plausible_for_end_stage_liver_disease(feed: Feed) -> None:
    for _, m in feed.messages:
        for o in m.orders:
            for r in o.results:
                if m.subject_id and r.analyte in ESLD_RANGES and r.value and r.status != "C":
                    low, high = ESLD_RANGES[r.analyte]
                    value = _canonical(r.value, r.unit, r.ref_range, r.analyte)
                    assert low * 0.97 <= value <= high * 1.03, (r.analyte, r.value, r.unit)


def test_subjects_drift_some_better_some_worse(feed: Feed) -> None:
    first: dict[str, Decimal] = {}
    last: dict[str, Decimal] = {}
    for _, m in feed.messages:
        for o in m.orders:
            for r in o.results:
                if m.kind == "visit" and r.analyte == "bilirubin_total" and r.status == "F":
                    value = _canonical(r.value, r.unit, r.ref_range, r.analyte)
                    first.setdefault(m.subject_id, value)
                    last[m.subject_id] = value
    better = sum(last[s] < first[s] * Decimal("0.8") for s in first)
    worse = sum(last[s] > first[s] * Decimal("1.25") for s in first)
    assert better >= 3 and worse >= 3


def _range_verdict(value: Decimal, ref_range: str) -> str:
    if ref_range.startswith("<"):
        return "H" if value >= Decimal(ref_range[1:]) else "N"
    low, high = (Decimal(x) for x in ref_range.split("-"))
    return "H" if value > high else "L" if value < low else "N"


def test_flags_agree_with_reference_ranges(rows: list[dict[str, str]]) -> None:
    checked = 0
    for r in rows:
        if r["type"] == "NM" and r["value"]:
            verdict = _range_verdict(Decimal(r["value"]), r["range"])
            assert r["flag"][:1] == verdict, r
            checked += 1
    flags = {r["flag"] for r in rows}
    assert {"N", "H", "L", "HH", "LL"} <= flags and checked > 5000


def test_units_and_codes_vary_as_real_feeds_do(rows: list[dict[str, str]]) -> None:
    units = {r["unit"] for r in rows}
    assert {
        "µmol/L",
        "umol/L",
        "g/L",
        "g/dL",
        "IU/L",
        "U/L",
        "s",
        "sec",
        "mEq/L",
        "mmol/L",
        "{INR}",
        "mg/dL",
    } <= units
    inr = [r for r in rows if r["code"] in {"INR", "6301-6"} and r["value"]]
    assert {r["unit"] for r in inr} == {"", "{INR}"}
    assert any(r["code"] == "1742-6" and r["system"] == "LN" for r in rows)
    assert any(r["code"] == "14631-6" and r["unit"].endswith("mol/L") for r in rows)
    assert any(r["code"] == "TBIL" and r["system"] == "L" for r in rows)


def test_numbers_sent_as_sn_and_st(rows: list[dict[str, str]]) -> None:
    assert any(r["type"] == "SN" and re.fullmatch(r"\^\d+", r["value"]) for r in rows)
    assert any(r["type"] == "ST" and r["value"] == "<0.5" for r in rows)
    assert any(r["type"] == "SN" and r["value"] == "<^0.5" for r in rows)


def test_local_codes_match_the_mapping_except_the_deliberately_unmapped(
    out: Path, rows: list[dict[str, str]]
) -> None:
    mapping = yaml.safe_load(MAPPINGS.read_text(encoding="utf-8"))["analytes"]
    mapped = {(c["system"], c["code"]) for a in mapping.values() for c in a["codes"]}
    for key in STUDY_ANALYTES:
        spec = ANALYTES[key]
        assert {("L", code) for code in spec.codes} <= mapped
        assert {("LN", f.loinc or spec.loinc) for f in spec.forms} <= mapped
    assert not {("L", code) for code in UNMAPPED_CODES} & mapped
    subjects = {r["mrn"] for r in enrolment(out)}
    sent = {r["code"] for r in rows if r["mrn"] in subjects}
    assert set(UNMAPPED_CODES) <= sent


# -- lifecycle -----------------------------------------------------------------------------


def test_preliminary_then_final_in_a_later_file(feed: Feed, rows: list[dict[str, str]]) -> None:
    filler = feed.cases["preliminary_then_final"][0]
    rows = [r for r in rows if r["filler"] == filler]
    prelim = [r for r in rows if r["status"] == "P"]
    final = [r for r in rows if r["status"] == "F"]
    assert prelim and {r["obr25"] for r in prelim} == {"P"} and {r["obr25"] for r in final} == {"F"}
    assert {(r["code"], r["sub"]) for r in prelim} == {(r["code"], r["sub"]) for r in final}
    assert max(r["file"] for r in prelim) < min(r["file"] for r in final)


def _case(rows: list[dict[str, str]], feed: Feed, name: str) -> list[dict[str, str]]:
    filler, code = feed.cases[name][0].split("/")
    return [r for r in rows if r["filler"] == filler and r["code"] == code]


def test_corrected_result_changes_the_value(rows: list[dict[str, str]], feed: Feed) -> None:
    original, corrected = _case(rows, feed, "corrected")
    assert (original["status"], corrected["status"], corrected["obr25"]) == ("F", "C", "C")
    assert original["value"] != corrected["value"] and original["file"] < corrected["file"]


def test_cancelled_result_has_no_value(rows: list[dict[str, str]], feed: Feed) -> None:
    (cancelled,) = _case(rows, feed, "cancelled")
    assert cancelled["status"] == "X" and cancelled["value"] == ""


def test_entered_in_error_follows_the_original(rows: list[dict[str, str]], feed: Feed) -> None:
    original, wrong = _case(rows, feed, "entered_in_error")
    assert (original["status"], wrong["status"]) == ("F", "W")
    assert original["file"] < wrong["file"]


def test_mrn_collision_under_another_authority(out: Path, feed: Feed) -> None:
    (collision,) = feed.cases["mrn_collision"]
    mrn, authority = collision.split("^^^")[0], collision.split("^")[3]
    assert authority != "NTCH" and mrn in {r["mrn"] for r in enrolment(out)}


# -- manifest and CLI ----------------------------------------------------------------------


def test_manifest_counts_match_the_files(
    out: Path, found: list[tuple[str, hl7.Message]], rows: list[dict[str, str]]
) -> None:
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["files"] == len(list(out.glob("*.hl7")))
    assert manifest["messages"] == len(found)
    assert manifest["trial_messages"] + manifest["other_messages"] == len(found)
    assert manifest["other_messages"] >= 3 * manifest["trial_messages"]
    assert manifest["results"] == len(rows) == sum(manifest["results_per_analyte"].values())
    assert manifest["subjects"] == 22 and manifest["batch_files"] == 1
    assert set(manifest["trial_observations_per_analyte"]) == set(STUDY_ANALYTES)


def test_cli_writes_the_feed_and_prints_the_manifest(tmp_path: Path) -> None:
    runner = CliRunner()
    args = [
        "simulate-lis",
        "--out",
        str(tmp_path / "feed"),
        "--seed",
        "3",
        "--other-patients",
        "20",
    ]
    result = runner.invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.output)
    assert manifest["seed"] == 3 and manifest["files"] == len(
        list((tmp_path / "feed").glob("*.hl7"))
    )
    again = runner.invoke(main, args)
    assert again.exit_code == 1 and "--force" in again.output and "Traceback" not in again.output
    forced = runner.invoke(main, [*args, "--force"])
    assert forced.exit_code == 0 and "Wrote" in forced.output


def test_cli_help_shows_an_example() -> None:
    result = CliRunner().invoke(main, ["simulate-lis", "--help"])
    assert result.exit_code == 0 and "Example: trialbridge simulate-lis --out" in result.output


def test_off_schedule_and_midnight_cases(feed: Feed) -> None:
    day0 = {s.subject_id: s.day0 for s in feed.subjects}
    windows = list(WINDOWS.values())
    kinds = {m.kind for _, m in feed.messages}
    assert {"visit", "unscheduled", "pre-baseline", "other"} <= kinds
    for _, m in feed.messages:
        day = (m.orders[0].collected.date() - day0.get(m.subject_id, date.min)).days
        if m.kind == "unscheduled":
            assert not any(low <= day <= high for low, high in windows)
        if m.kind == "pre-baseline":
            assert day < WINDOWS["week0"][0]
    (subject,) = feed.cases["midnight_week1"]
    (week1,) = {
        m.orders[0].collected
        for _, m in feed.messages
        if (m.subject_id, m.visit) == (subject, "week1")
    }
    assert (week1.hour, week1.minute) == (0, 20)
    assert (week1.date() - day0[subject]).days == WINDOWS["week1"][0]
