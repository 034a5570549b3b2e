"""finsentry.jobs: the daemon's scheduled jobs (model refresh, daily digest, housekeeping).

Public surface: :class:`DaemonJobs` (the scheduler a daemon starts),
:class:`JobSources`, the one-owner-per-group rule (:class:`Ownership`,
:class:`ClaimGate`, :func:`claim_winner`, :data:`OWNER_PARTITION`) over a
:class:`JobLog` (:class:`KafkaJobLog`: the jobs topic), per-member
:class:`Tally` records and :func:`sum_tallies`, and the period helpers
(:func:`fire_times`, :func:`latest_period`, :func:`period_name`,
:func:`digest_id`). Design and limits: docs/operations.md, "Scheduled jobs".
"""

from finsentry.jobs._log import JobLogError, KafkaJobLog
from finsentry.jobs._ownership import (
    OWNER_PARTITION,
    ClaimGate,
    ClaimResult,
    JobLog,
    LogRecord,
    Ownership,
    claim_winner,
)
from finsentry.jobs._periods import digest_id, fire_times, latest_period, period_name
from finsentry.jobs._scheduler import RESULTS, DaemonJobs, JobSources, digest_document
from finsentry.jobs._tally import AlertTally, DigestCounts, Tally, sum_tallies

__all__ = [
    "AlertTally",
    "OWNER_PARTITION",
    "RESULTS",
    "ClaimGate",
    "ClaimResult",
    "DaemonJobs",
    "DigestCounts",
    "JobLog",
    "JobLogError",
    "JobSources",
    "KafkaJobLog",
    "LogRecord",
    "Ownership",
    "Tally",
    "claim_winner",
    "digest_document",
    "digest_id",
    "fire_times",
    "latest_period",
    "period_name",
    "sum_tallies",
]
