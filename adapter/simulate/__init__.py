"""A realistic, seeded sample LIS feed (HL7 v2.5.1 ORU^R01) for demos and tests.

The core (:func:`simulate`) returns the feed as data; :func:`write_feed` writes it to a folder
with the coordinator's ``enrolment.csv``, the truth table ``visits.csv`` and ``manifest.json``.
"""

from __future__ import annotations

from adapter.simulate.feed import SimConfig, simulate
from adapter.simulate.outputs import enrolment_csv, manifest, visits_csv
from adapter.simulate.writer import write_feed

__all__ = ["SimConfig", "enrolment_csv", "manifest", "simulate", "visits_csv", "write_feed"]
