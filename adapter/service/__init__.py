"""The background service (``trialbridge run``): scheduled jobs over the durable store.

Modules: :mod:`~adapter.service.config` (the ``service:`` section), :mod:`~adapter.service.plan`
(pure: outbox parts, which rows to push next, backoff, what an error means),
:mod:`~adapter.service.stages` (process the inbox, push the outbox, purge raw bytes),
:mod:`~adapter.service.summary` (what the stages did, counted: ``PushSummary``),
:mod:`~adapter.service.scheduler` (APScheduler jobs under the scheduler lease),
:mod:`~adapter.service.http` (``/healthz``, ``/readyz``, ``/metrics``),
:mod:`~adapter.service.metrics` (the Prometheus metrics, for sources too),
:mod:`~adapter.service.status` (what ``trialbridge status`` shows).
"""
