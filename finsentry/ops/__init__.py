"""finsentry.ops: running the daemon for months.

Public surface: :class:`DaemonOps` (what the daemon starts: ops HTTP server,
metrics, hot model reload), :class:`OpsServer` (``/healthz``, ``/readyz``,
``/metrics``), :class:`DaemonMetrics`, :class:`ModelReloader` and
:func:`self_check`, and :func:`mask_secrets` (``finsentry config check``).
"""

from finsentry.ops._daemon_ops import DaemonOps, broker_reachable
from finsentry.ops._mask import mask_secrets, mask_url
from finsentry.ops._metrics import DaemonMetrics, MetricSource
from finsentry.ops._reload import SELF_CHECK_HEADLINES, ModelReloader, SelfCheckError, self_check
from finsentry.ops._server import OpsServer, Probe

__all__ = [
    "DaemonMetrics",
    "DaemonOps",
    "MetricSource",
    "ModelReloader",
    "OpsServer",
    "Probe",
    "SELF_CHECK_HEADLINES",
    "SelfCheckError",
    "broker_reachable",
    "mask_secrets",
    "mask_url",
    "self_check",
]
