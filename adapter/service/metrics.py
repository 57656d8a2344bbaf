"""The service's Prometheus metrics, served at ``/metrics``.

They live in their own :data:`REGISTRY` (not the process-wide default), and sources import
and increment them::

    from adapter.service.metrics import RECEIVED, FILTERED
    RECEIVED.labels(source="mllp").inc(len(batch))

Labels carry source and job names only, never anything from a message.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

RECEIVED = Counter(
    "trialbridge_messages_received",
    "Messages that came in, per source (before the enrolment filter).",
    ["source"],
    registry=REGISTRY,
)
FILTERED = Counter(
    "trialbridge_messages_filtered",
    "Messages dropped at the enrolment filter (not enrolled, withdrawn, unattributable).",
    ["source"],
    registry=REGISTRY,
)
MAPPED = Counter(
    "trialbridge_messages_mapped",
    "Messages processed into transactions for the FHIR server.",
    ["source"],
    registry=REGISTRY,
)
HELD = Counter(
    "trialbridge_results_held",
    "Results held (unmapped code, unit, value, ...) while processing.",
    ["source"],
    registry=REGISTRY,
)
REFUSED = Counter(
    "trialbridge_messages_refused",
    "Messages refused while processing (cannot be used as sent).",
    ["source"],
    registry=REGISTRY,
)
QUARANTINED = Counter(
    "trialbridge_messages_quarantined",
    "Messages set aside because processing (stage=process) or pushing (stage=push) them "
    "failed; trialbridge quarantine list shows them. The open ones are "
    'trialbridge_queue_depth{queue="quarantined"}.',
    ["stage"],
    registry=REGISTRY,
)
PUSHED = Counter(
    "trialbridge_transactions_pushed",
    "Transactions the FHIR server accepted.",
    ["source"],
    registry=REGISTRY,
)
FAILED = Counter(
    "trialbridge_transactions_failed",
    "Transaction attempts that failed (retried later, or dead-lettered on 4xx).",
    ["source", "outcome"],
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "trialbridge_queue_depth",
    "Items waiting: inbox (to process), outbox (to push), dead_letters, held.",
    ["queue"],
    registry=REGISTRY,
)
PUSH_LATENCY = Histogram(
    "trialbridge_push_latency_seconds",
    "Time of one transaction to the FHIR server (reconcile search and POST).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
JOB_RUNS = Counter(
    "trialbridge_job_runs",
    "Runs of each scheduled job in this process.",
    ["job"],
    registry=REGISTRY,
)
JOB_LAST_SUCCESS = Gauge(
    "trialbridge_job_last_success_timestamp_seconds",
    "Unix time of each job's last successful run.",
    ["job"],
    registry=REGISTRY,
)
RECONCILE_MISSED = Counter(
    "trialbridge_query_reconciliation_missed",
    "Results the LIS reconciliation pull found that the incremental pulls had missed "
    "(released late or back-dated by the LIS): should stay 0.",
    ["source"],
    registry=REGISTRY,
)
ACTIVE = Gauge(
    "trialbridge_scheduler_active",
    "1 while this instance holds the scheduler lease, 0 while it is a standby.",
    registry=REGISTRY,
)

# The stages after the inbox do not know which source a message came from.
ALL_SOURCES = "all"

# Health: what needs a person (deploy/prometheus/trialbridge-alerts.yaml alerts on these).
SOURCE_UP = Gauge(
    "trialbridge_source_up",
    "1 while a source works (a listener listens, a polled source's last poll succeeded), "
    "0 when it failed; the service is not ready while one is 0.",
    ["source"],
    registry=REGISTRY,
)
SOURCE_LAST_MESSAGE = Gauge(
    "trialbridge_source_last_message_timestamp_seconds",
    "Unix time of the last message a source handed in (before the enrolment filter); the "
    "service's start time until the first one, so a restart does not look like silence.",
    ["source"],
    registry=REGISTRY,
)
SOURCE_SILENCE_LIMIT = Gauge(
    "trialbridge_source_expected_silence_seconds",
    "How long a source may stay silent before someone should look (service.alerts."
    "silent_minutes); absent for a source with no limit.",
    ["source"],
    registry=REGISTRY,
)
OLDEST_PENDING_AGE = Gauge(
    "trialbridge_oldest_pending_age_seconds",
    "Age of the oldest item waiting: inbox (to process), outbox (to push); 0 when empty.",
    ["queue"],
    registry=REGISTRY,
)
JOB_LAST_ERROR = Gauge(
    "trialbridge_job_last_error_timestamp_seconds",
    "Unix time of each job's last failed run (push: a run in which every transaction tried "
    "failed).",
    ["job"],
    registry=REGISTRY,
)
MAPPINGS_RELOAD_FAILURES = Counter(
    "trialbridge_mappings_reload_failures",
    "Mapping reloads refused (the files changed but did not validate; the previous "
    "mappings stay in use).",
    registry=REGISTRY,
)
LIMITS_HIT = Counter(
    "trialbridge_limits_hit",
    "A configured limit was reached (connections, buffered bytes, frame timeout, file "
    "size, ...): per source and limit name.",
    ["source", "limit"],
    registry=REGISTRY,
)
