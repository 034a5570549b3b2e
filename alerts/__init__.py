"""The alerts stage: event-time windows -> spike detection -> durable webhook delivery.

Data path: ``ScoredItem`` (from ``inference._scored``) ->
``EventTimeWindows.add_item`` / ``heartbeat`` / ``advance`` (tumbling or
hopping, keys ticker/topic/market) -> ``WindowResult`` ->
``SpikeDetector.evaluate_windows`` (``EwmaBaseline``, exact binomial test,
user ``Rule``s compiled by ``compile_rule``, ``AlertLifecycle``) or the
stateless ``ThresholdDetector`` -> ``Alert`` (firing / resolved) -> ``Outbox.put`` (SQLite, WAL,
durable before the Kafka commit) -> ``DeliveryService`` (one worker thread
per ``Endpoint``: retries on ``RetryPolicy``, Standard Webhooks signatures,
``native``/``alertmanager``/``slack`` bodies, dead letters, metrics).
``WebhookSink`` is the receiver behind ``finsentry webhook-sink`` (verifies
signatures when given secrets).
"""

from ._alert import Alert, AlertStatus, alert_id_for, message_id_for
from ._delivery import DeliveryService, EndpointWorker
from ._baseline import EwmaBaseline
from ._detector import SpikeDetector, ThresholdDetector
from ._lifecycle import AlertLifecycle
from ._endpoint import Endpoint, PayloadFormat, endpoint_id_for
from ._formats import NOTICE_FORMATS, group_key, render, render_notice
from ._metrics import DeliveryMetrics, default_metrics
from ._outbox import Outbox, OutboxEntry, OutboxError, PendingDelivery
from ._result import EVIDENCE_LIMIT, Evidence, WindowCounts, WindowInterest, WindowResult
from ._rules import RULE_FUNCTIONS, RULE_SYMBOLS, Rule, RuleError, compile_rule
from ._significance import binomial_sf, cohens_h, severity_for, wilson_lower_bound
from ._retry import (
    DEFAULT_RETRY_SCHEDULE_S,
    STANDARD_WEBHOOKS_EXAMPLE_SCHEDULE_S,
    Outcome,
    RetryPolicy,
    classify_status,
    parse_retry_after,
)
from ._signing import (
    DEFAULT_TOLERANCE_S,
    SecretError,
    SignatureError,
    Signer,
    Verifier,
    generate_secret,
    load_secrets,
)
from ._sink import WebhookSink, serve_forever
from ._windows import KEY_TYPES, MARKET_KEY, EventTimeWindows, TumblingWindows, story_key

__all__ = [
    "KEY_TYPES",
    "MARKET_KEY",
    "NOTICE_FORMATS",
    "RULE_FUNCTIONS",
    "RULE_SYMBOLS",
    "AlertLifecycle",
    "EventTimeWindows",
    "EwmaBaseline",
    "Rule",
    "RuleError",
    "SpikeDetector",
    "binomial_sf",
    "cohens_h",
    "compile_rule",
    "severity_for",
    "story_key",
    "wilson_lower_bound",
    "DEFAULT_TOLERANCE_S",
    "EVIDENCE_LIMIT",
    "DEFAULT_RETRY_SCHEDULE_S",
    "STANDARD_WEBHOOKS_EXAMPLE_SCHEDULE_S",
    "Alert",
    "AlertStatus",
    "DeliveryMetrics",
    "DeliveryService",
    "Endpoint",
    "EndpointWorker",
    "Evidence",
    "Outbox",
    "OutboxEntry",
    "OutboxError",
    "Outcome",
    "PayloadFormat",
    "PendingDelivery",
    "RetryPolicy",
    "SecretError",
    "SignatureError",
    "Signer",
    "ThresholdDetector",
    "TumblingWindows",
    "Verifier",
    "WebhookSink",
    "WindowCounts",
    "WindowInterest",
    "WindowResult",
    "alert_id_for",
    "classify_status",
    "default_metrics",
    "endpoint_id_for",
    "generate_secret",
    "group_key",
    "load_secrets",
    "message_id_for",
    "parse_retry_after",
    "render",
    "render_notice",
    "serve_forever",
]
