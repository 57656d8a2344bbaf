"""The enrolment registry, kept in the adapter's state store (never in the repo).

:class:`Registry` is the I/O shell; the rules an enrolment must meet are pure functions here
(:func:`check_enrolment`), so the CSV import can dry-run them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import RowMapping, delete, func, insert, select, update
from sqlalchemy.engine import Connection

from adapter.errors import TrialBridgeError
from adapter.store import Store
from adapter.store.changes import announce
from adapter.store.schema import subject_identifiers, subject_infusions, subjects
from adapter.trial.enrolment import EnrolledSubject, EnrolmentIndex, HospitalId, age_range_at
from adapter.trial.resources import SubjectRecord
from adapter.trial.study import Study

Clock = Callable[[], datetime]
SEXES = ("F", "M", "O", "U")


# Built once: the registry's version is asked for whenever the store may have changed.
_VERSION_QUERY = select(func.count(), func.max(subjects.c.updated_at))


class EnrolmentError(TrialBridgeError):
    """An enrolment, withdrawal or vital-status change was refused; the message says why."""


@dataclass(frozen=True, slots=True)
class NewSubject:
    """What the coordinator gives to enrol one subject."""

    subject_id: str
    hospital_ids: tuple[HospitalId, ...]
    arm: str
    consent_date: date
    infusion_dates: tuple[date, ...]
    sex: str
    birth_year: int


def check_enrolment(
    new: NewSubject,
    study: Study,
    enrolled: Sequence[EnrolledSubject],
    *,
    override_age: bool,
    without_authority: bool = False,
) -> list[str]:
    """Everything wrong with an enrolment (empty when it may go ahead)."""
    problems = []
    if not new.subject_id.strip():
        problems.append("the subject number is empty")
    if any(s.subject_id == new.subject_id for s in enrolled):
        problems.append(f"{new.subject_id} is already enrolled")
    if new.arm not in {a.code for a in study.arms}:
        known = ", ".join(a.code for a in study.arms)
        problems.append(f"arm {new.arm!r} is not one of the study's arms ({known})")
    if new.sex not in SEXES:
        problems.append(f"sex {new.sex!r} must be one of {', '.join(SEXES)}")
    problems += _identifier_problems(new, enrolled, without_authority)
    problems += _date_problems(new)
    if not override_age:
        problems += _age_problems(new, study)
    return problems


def _identifier_problems(
    new: NewSubject, enrolled: Sequence[EnrolledSubject], without_authority: bool = False
) -> list[str]:
    if not new.hospital_ids:
        return ["at least one hospital identifier (MRN with its assigning authority) is needed"]
    # Only on request (enrol --without-authority, for a LIS that never sends PID-3.4): such an
    # identifier matches any message whose PID-3 carries the number with no authority.
    problems = [
        "an identifier without an assigning authority cannot be matched safely "
        "(enrol --without-authority if the LIS never sends one)"
        for h in new.hospital_ids
        if not h.authority.strip() and not without_authority
    ]
    taken = {h.key(): s.subject_id for s in enrolled for h in s.hospital_ids}
    for hospital_id in new.hospital_ids:
        owner = taken.get(hospital_id.key())
        if owner is not None:
            problems.append(f"an identifier of {hospital_id.authority} already belongs to {owner}")
    return problems


def _date_problems(new: NewSubject) -> list[str]:
    if not new.infusion_dates:
        return ["at least one infusion date (day 0) is needed"]
    if min(new.infusion_dates) < new.consent_date:
        return ["the first infusion is before consent"]
    return []


def _age_problems(new: NewSubject, study: Study) -> list[str]:
    youngest, oldest = age_range_at(new.consent_date, new.birth_year)
    if oldest < study.min_age or youngest > study.max_age:
        return [
            f"born {new.birth_year}, the subject is {youngest}-{oldest} at consent, outside "
            f"the study's {study.min_age}-{study.max_age}; use --override-age if the protocol "
            "allows it"
        ]
    return []


class Registry:
    """Subjects in the store: enrol, list, withdraw, record vital status."""

    def __init__(self, store: Store, study: Study, clock: Clock | None = None) -> None:
        self.store = store
        self.study = study
        self.clock = clock or (lambda: datetime.now(UTC))
        self._index: tuple[tuple[int, datetime | None], EnrolmentIndex] | None = None
        self._probe = store.change_probe()

    def enrol(
        self, new: NewSubject, *, override_age: bool = False, without_authority: bool = False
    ) -> EnrolledSubject:
        problems = check_enrolment(
            new,
            self.study,
            self.subjects(),
            override_age=override_age,
            without_authority=without_authority,
        )
        if problems:
            raise EnrolmentError(f"cannot enrol {new.subject_id}: " + "; ".join(problems))
        self.enrol_many([new])
        return self.subject(new.subject_id)

    def enrol_many(self, batch: Iterable[NewSubject]) -> None:
        """Insert already-checked subjects in one transaction (all or nothing)."""
        now = self.clock()
        with self.store.engine.begin() as conn:
            for new in batch:
                _insert(conn, new, now)
            announce(conn)

    def subjects(self) -> list[EnrolledSubject]:
        ids: dict[str, list[HospitalId]] = {}
        infusions: dict[str, list[date]] = {}
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(subjects).order_by(subjects.c.subject_id)).mappings().all()
            for i in conn.execute(select(subject_identifiers)).mappings():
                ids.setdefault(i["subject_id"], []).append(HospitalId(i["value"], i["authority"]))
            for f in conn.execute(select(subject_infusions)).mappings():
                infusions.setdefault(f["subject_id"], []).append(f["infusion_date"])
        return [_subject(row, ids, infusions) for row in rows]

    def subject(self, subject_id: str) -> EnrolledSubject:
        for found in self.subjects():
            if found.subject_id == subject_id:
                return found
        raise EnrolmentError(f"{subject_id} is not enrolled (see `trialbridge subjects list`)")

    def index(self) -> EnrolmentIndex:
        """The enrolment index as of the latest commit, by any process. The gate asks for it
        per batch (an MLLP batch can be one message), so it is rebuilt only when the registry
        changed, and the registry's version is read only after some commit to the store."""
        store_changed = self._probe.changed()  # before the read: a later commit shows next time
        if self._index is None or store_changed:
            version = self.version()
            if self._index is None or self._index[0] != version:
                self._index = (version, EnrolmentIndex(self.subjects()))
        return self._index[1]

    def version(self) -> tuple[int, datetime | None]:
        """Changes with every enrolment (count) and every change to a subject (updated_at)."""
        with self.store.engine.connect() as conn:
            row = conn.execute(_VERSION_QUERY).one()
        return int(row[0]), row[1]

    def withdraw(self, subject_id: str, at: datetime | None = None) -> EnrolledSubject:
        current = self.subject(subject_id)
        if current.withdrawn_at is not None:
            raise EnrolmentError(
                f"{subject_id} withdrew already on {current.withdrawn_at:%Y-%m-%d}"
            )
        moment = at or self.clock()
        self._update(subject_id, status="withdrawn", withdrawn_at=moment)
        return self.subject(subject_id)

    def record_vital_status(
        self, subject_id: str, *, died_on: date | None = None, alive_on: date | None = None
    ) -> EnrolledSubject:
        current = self.subject(subject_id)
        if died_on is None and alive_on is None:
            raise EnrolmentError("give a date of death or a date last known alive")
        if died_on is not None:
            self._update(subject_id, died_on=died_on, status="off-study")
        if alive_on is not None:
            if current.record.died_on is not None and alive_on > current.record.died_on:
                raise EnrolmentError(f"{subject_id} died on {current.record.died_on}")
            known = current.record.last_known_alive
            self._update(subject_id, last_known_alive=max(alive_on, known or alive_on))
        return self.subject(subject_id)

    def _update(self, subject_id: str, **values: object) -> None:
        with self.store.engine.begin() as conn:
            conn.execute(
                update(subjects)
                .where(subjects.c.subject_id == subject_id)
                .values(**values, updated_at=self.clock())
            )
            announce(conn)

    def remove_all(self) -> None:
        """Empty the registry (for the demo's fresh start)."""
        with self.store.engine.begin() as conn:
            conn.execute(delete(subject_infusions))
            conn.execute(delete(subject_identifiers))
            conn.execute(delete(subjects))
            announce(conn)


def _insert(conn: Connection, new: NewSubject, now: datetime) -> None:
    conn.execute(
        insert(subjects).values(
            subject_id=new.subject_id,
            arm=new.arm,
            sex=new.sex,
            birth_year=new.birth_year,
            consent_date=new.consent_date,
            status="on-study",
            created_at=now,
            updated_at=now,
        )
    )
    conn.execute(
        insert(subject_identifiers),
        [
            {"subject_id": new.subject_id, "value": h.key()[0], "authority": h.key()[1]}
            for h in new.hospital_ids
        ],
    )
    conn.execute(
        insert(subject_infusions),
        [
            {"subject_id": new.subject_id, "infusion_date": d}
            for d in sorted(set(new.infusion_dates))
        ],
    )


def _subject(
    row: RowMapping,
    ids: dict[str, list[HospitalId]],
    infusions: dict[str, list[date]],
) -> EnrolledSubject:
    subject_id = str(row["subject_id"])
    dates = tuple(sorted(infusions.get(subject_id, [])))
    withdrawn_at = row["withdrawn_at"]
    record = SubjectRecord(
        subject_id=subject_id,
        arm=row["arm"],
        sex=row["sex"],
        birth_year=row["birth_year"],
        consent_date=row["consent_date"],
        status=row["status"],
        withdrawn_on=withdrawn_at.date() if withdrawn_at else None,
        died_on=row["died_on"],
        day0=dates[0] if dates else None,
        last_known_alive=row["last_known_alive"],
    )
    return EnrolledSubject(record, tuple(ids.get(subject_id, [])), dates, withdrawn_at)
