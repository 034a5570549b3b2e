"""The alerts stage: event-time windows -> spike detection -> webhook delivery.

Data path: ``ScoredItem`` (from ``inference._scored``) ->
``TumblingWindows.add`` / ``advance`` -> ``WindowResult`` ->
``ThresholdDetector.evaluate`` -> ``Alert`` -> ``WebhookSender.send``.
``WebhookSink`` is the receiver behind ``finsentry webhook-sink``.
"""

from ._alert import Alert, alert_id_for
from ._detector import ThresholdDetector
from ._result import EVIDENCE_LIMIT, Evidence, WindowResult
from ._sink import WebhookSink, serve_forever
from ._webhook import DeliveryResult, WebhookSender
from ._windows import TumblingWindows

__all__ = [
    "EVIDENCE_LIMIT",
    "Alert",
    "DeliveryResult",
    "Evidence",
    "ThresholdDetector",
    "TumblingWindows",
    "WebhookSender",
    "WebhookSink",
    "WindowResult",
    "alert_id_for",
    "serve_forever",
]
