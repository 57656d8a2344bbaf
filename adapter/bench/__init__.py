"""The performance benchmark (issue 8): ``make bench`` / ``python -m adapter.bench``.

Each scenario measures TrialBridge and a baseline in the same run, so the ratio holds on a
shared machine whose absolute speed drifts. Every run is bounded: loopback only, a count and
a time limit per scenario, and every server or worker it starts is stopped before it returns.

Modules: :mod:`~adapter.bench.feed` (the seeded hospital feed), :mod:`~adapter.bench.env`
(stores, registry, FHIR server), :mod:`~adapter.bench.mllp_peer` (the sender process and the
bare ACK server), :mod:`~adapter.bench.scenarios` (the seven scenarios),
:mod:`~adapter.bench.results` (the table and the JSON).
"""
