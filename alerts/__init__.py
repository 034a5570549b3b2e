"""The alerts stage: event-time windows -> spike detection -> durable webhook delivery.

Data path: ``ScoredItem`` (from ``inference._scored``) ->
``TumblingWindows.add`` / ``advance`` -> ``WindowResult`` ->
``ThresholdDetector.evaluate`` -> ``Alert`` -> ``WebhookSender.send``.
``WebhookSink`` is the receiver behind ``finsentry webhook-sink``.
Delivery building blocks: ``Endpoint``, ``RetryPolicy`` (Standard Webhooks
schedule), ``Signer``/``Verifier`` (Standard Webhooks signatures), ``render``
(native, Alertmanager v4, Slack bodies).
"""

from ._alert import Alert, AlertStatus, alert_id_for, message_id_for
from ._detector import ThresholdDetector
from ._endpoint import Endpoint, PayloadFormat, endpoint_id_for
from ._formats import group_key, render
from ._result import EVIDENCE_LIMIT, Evidence, WindowResult
from ._retry import STANDARD_WEBHOOKS_SCHEDULE_S, Outcome, RetryPolicy, classify_status, parse_retry_after
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
from ._webhook import DeliveryResult, WebhookSender
from ._windows import TumblingWindows

__all__ = [
    "DEFAULT_TOLERANCE_S",
    "EVIDENCE_LIMIT",
    "STANDARD_WEBHOOKS_SCHEDULE_S",
    "Alert",
    "AlertStatus",
    "DeliveryResult",
    "Endpoint",
    "Evidence",
    "Outcome",
    "PayloadFormat",
    "RetryPolicy",
    "SecretError",
    "SignatureError",
    "Signer",
    "ThresholdDetector",
    "TumblingWindows",
    "Verifier",
    "WebhookSender",
    "WebhookSink",
    "WindowResult",
    "alert_id_for",
    "classify_status",
    "endpoint_id_for",
    "generate_secret",
    "group_key",
    "load_secrets",
    "message_id_for",
    "parse_retry_after",
    "render",
    "serve_forever",
]
