"""finsentry's one configuration object.

Settings come, highest priority first, from: keyword arguments, environment
variables (``FINSENTRY_<SECTION>__<KEY>``, e.g.
``FINSENTRY_KAFKA__BOOTSTRAP=127.0.0.1:9092``), a TOML file (``--config``
or ``FINSENTRY_CONFIG``), then the defaults below. A bad value fails at start
with :class:`ConfigError`, which names the key and the reason.

Example TOML (every section optional)::

    [kafka]
    bootstrap = "127.0.0.1:9092"
    group_id = "finsentry"

    [detector]
    min_negative = 5
    min_neg_share = 0.6

    [webhooks]
    urls = ["http://127.0.0.1:8765/alerts"]   # native format, section defaults

    [[webhooks.endpoints]]                     # one table per endpoint
    url = "https://alertmanager-receiver.example/hook"
    format = "alertmanager"                    # native | alertmanager | slack
    secret_env = "FINSENTRY_HOOK_SECRET"       # the variable's name, never the secret
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from finsentry.broker import is_topic_name

__all__ = [
    "ConfigError",
    "Settings",
    "KafkaSettings",
    "ModelSettings",
    "BatchSettings",
    "WindowSettings",
    "DetectorSettings",
    "TrainingSettings",
    "OpsSettings",
    "JobsSettings",
    "WebhookSettings",
    "EndpointSettings",
    "DEFAULT_RETRY_SCHEDULE_S",
    "load_settings",
    "REPO_ROOT",
]

#: Root of a source checkout (where ``models/`` and ``deploy/`` live).
REPO_ROOT = Path(__file__).resolve().parents[1]


class ConfigError(Exception):
    """The configuration is invalid. The message names each bad key and why."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KafkaSettings(_Section):
    """Kafka connection, topics and consumer group."""

    bootstrap: str = Field(default="127.0.0.1:9092", min_length=3, description="host:port[,host:port]")
    group_id: str = Field(default="finsentry", min_length=1)
    raw_topic: str = Field(default="news.raw", min_length=1)
    scored_topic: str = Field(default="news.scored", min_length=1)
    dlq_topic: str = Field(default="news.dlq", min_length=1)
    late_topic: str = Field(default="news.late", min_length=1, description="late and future-dated scored items")
    jobs_topic: str = Field(default="finsentry.jobs", min_length=1, description="scheduled jobs' claims and "
                            "per-member tallies (one partition; see docs/operations.md, Scheduled jobs)")
    alert_claims_topic: str | None = Field(
        default=None, min_length=1, description="one-partition topic where the group's daemons claim alert messages "
        "before sending them (default <group_id>.alert-claims; created when missing; see docs/operations.md, "
        "Scaling out)")
    partitions: int = Field(default=4, ge=1, le=1024, description="partitions of topics finsentry creates")
    create_topics: bool = Field(default=True, description="create missing topics at start")
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    max_poll_interval_ms: int = Field(default=300_000, ge=1_000, description="kafka max.poll.interval.ms; the daemon keeps polling (partitions paused) while a batch is scored, so a slow model does not need a large value")
    session_timeout_ms: int = Field(default=10_000, ge=6_000)

    @field_validator("raw_topic", "scored_topic", "dlq_topic", "late_topic", "jobs_topic", "alert_claims_topic")
    @classmethod
    def _topic_name(cls, value: str | None) -> str | None:
        """Kafka's topic-name rule (``kafka.common.internals.Topic``): 1-249 of ASCII letters, digits, ``.``,
        ``_``, ``-``; not ``.`` or ``..``; not an internal ``__`` topic."""
        if value is None:
            return value
        if value.startswith("__") or not is_topic_name(value):
            raise ValueError(f"{value!r} is not a Kafka topic name finsentry may use (1-249 of A-Z a-z 0-9 . _ -, "
                             "not '.', '..' or an internal '__' topic)")
        return value

    @model_validator(mode="after")
    def _topics_distinct(self) -> "KafkaSettings":
        named = {"raw_topic": self.raw_topic, "scored_topic": self.scored_topic, "dlq_topic": self.dlq_topic,
                 "late_topic": self.late_topic, "jobs_topic": self.jobs_topic}
        if self.alert_claims_topic is not None:
            named["alert_claims_topic"] = self.alert_claims_topic
        seen: dict[str, str] = {}
        for key, topic in named.items():
            if topic in seen:
                raise ValueError(f"{key} and {seen[topic]} are both {topic!r}: each needs a topic of its own")
            seen[topic] = key
        return self


class ModelSettings(_Section):
    """Which model folder to load and where to run it."""

    path: Path = Field(
        default=REPO_ROOT / "models",
        description="a model folder, or a registry folder whose DEFAULT file names one",
    )
    device: Literal["auto", "cpu", "gpu"] = "auto"
    intra_op_threads: int = Field(default=0, ge=0, description="0 = ONNX Runtime picks")
    sub_batch: int = Field(
        default=0, ge=0,
        description="most rows per ONNX Runtime call (0 = the scorer's default); 1 makes each item's scores "
                    "independent of the batch it is scored in (the int8 model quantizes per call), at a throughput cost",
    )


class BatchSettings(_Section):
    """Micro-batching: a batch closes at ``max_batch`` items or ``max_wait_ms``."""

    max_batch: int = Field(default=64, ge=1, le=4096)
    max_wait_ms: int = Field(default=50, ge=1, le=60_000)
    paused_poll_ms: int = Field(
        default=100, ge=1, le=60_000,
        description="while a batch is scored for longer than this, the partitions are paused and poll() runs "
                    "this often (max.poll.interval.ms); the wait itself ends as soon as scoring does")


#: The most hops (panes) one window may span: beyond it every window close reads too many panes.
MAX_PANES = 1440


class WindowSettings(_Section):
    """Event-time windows per key: hopping by ``hop_minutes`` (tumbling when it equals ``size_minutes``)."""

    size_minutes: float = Field(default=60, gt=0, le=7 * 24 * 60)
    hop_minutes: float | None = Field(
        default=5, gt=0, le=7 * 24 * 60,
        description="distance between window starts, must divide size_minutes; = size_minutes (or null) for tumbling",
    )
    allowed_lateness_minutes: float = Field(default=10, ge=0, le=7 * 24 * 60)
    key_types: list[Literal["ticker", "topic", "market"]] = Field(default=["ticker"], min_length=1)
    max_future_minutes: float = Field(
        default=5, ge=0, description="items dated further than this after their ingestion time are flagged 'future'"
    )
    idle_advance: bool = Field(
        default=True,
        description="caught-up partitions stop holding the watermark (false: only items and heartbeats move it)",
    )
    rebuild: bool = Field(default=True, description="rebuild open windows from the scored topic on assignment")
    aliases_csv: Path | None = Field(default=None, description="alias,ticker CSV for items without tickers")
    extract_tickers: Literal["missing", "always"] = Field(
        default="missing",
        description="search headlines for cashtags and aliases only for items without feed tickers ('missing'), "
                    "or add them to every item's tickers ('always')",
    )

    @model_validator(mode="after")
    def _hop_divides(self) -> "WindowSettings":
        size_ms = self.size_minutes * 60_000
        if abs(size_ms - round(size_ms)) > 1e-6:
            raise ValueError(f"size_minutes={self.size_minutes} is not a whole number of milliseconds")
        if self.hop_minutes is not None:
            hop_ms = self.hop_minutes * 60_000
            default = "" if "hop_minutes" in self.model_fields_set else " (the default hop is 5 minutes)"
            if abs(hop_ms - round(hop_ms)) > 1e-6 or round(hop_ms) > size_ms or round(size_ms) % round(hop_ms):
                raise ValueError(
                    f"hop_minutes={self.hop_minutes}{default} must divide size_minutes={self.size_minutes}; "
                    "set hop_minutes = size_minutes for tumbling windows"
                )
            if size_ms / hop_ms > MAX_PANES:
                raise ValueError(
                    f"hop_minutes={self.hop_minutes} makes {size_ms / hop_ms:.0f} hops per window of "
                    f"size_minutes={self.size_minutes}; at most {MAX_PANES} (each closing reads every hop of the window)"
                )
        return self


class DetectorSettings(_Section):
    """Spike detector (``kind = "spike"``: baseline, binomial test, rules, lifecycle) or plain thresholds."""

    kind: Literal["spike", "threshold"] = "spike"
    min_negative: int = Field(default=5, ge=1)
    min_neg_share: float = Field(default=0.6, gt=0, le=1)
    alpha: float = Field(default=0.001, gt=0, le=1, description="significance level of the binomial test")
    resolve_share: float | None = Field(default=None, ge=0, le=1, description="hysteresis bound (min_neg_share/2)")
    resolve_p: float = Field(default=0.05, gt=0, le=1, description="a window with p-value >= this is calm")
    baseline_halflife_windows: float = Field(default=24, gt=0)
    prior_share: float = Field(default=0.2, gt=0, lt=1, description="baseline share of a key not seen yet")
    prior_windows: int = Field(default=4, ge=0, description="how many windows the prior is worth")
    rules: list[str] = Field(default=[], description="extra conditions, see docs/detector.md")
    state_rebuild_hours: float = Field(
        default=48, ge=0, le=30 * 24,
        description="on assignment, replay this many hours of the scored topic to rebuild baselines and open "
                    "episodes (0: start them empty); needs windows.rebuild",
    )

    @model_validator(mode="after")
    def _detector_builds(self) -> "DetectorSettings":
        """Settings that are each in range but do not fit together (``resolve_p`` not above ``alpha``,
        ``resolve_share`` above ``min_neg_share``) fail here, at load, with the detector's own message."""
        from alerts import EwmaBaseline, SpikeDetector  # the alerts stage owns the detector's rules

        if self.kind == "spike":
            try:
                SpikeDetector(self.min_negative, self.min_neg_share, self.alpha, self.resolve_share, self.resolve_p,
                              EwmaBaseline(self.baseline_halflife_windows, self.prior_share, self.prior_windows))
            except ValueError as exc:
                raise ValueError(f"detector settings do not fit together: {exc}") from exc
        return self

    @field_validator("rules")
    @classmethod
    def _rules_compile(cls, value: list[str]) -> list[str]:
        from alerts import compile_rule  # the alerts stage owns the rule language

        for text in value:
            compile_rule(text)  # RuleError (a ValueError) names the rule and the reason
        return value


#: Default retry schedule, seconds, modelled on the Standard Webhooks one (mirrors
#: ``alerts.DEFAULT_RETRY_SCHEDULE_S``; see ``alerts/_retry.py`` for the source).
DEFAULT_RETRY_SCHEDULE_S = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)


def _check_http_url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{url!r} is not an http(s) URL")
    return url


class EndpointSettings(_Section):
    """One webhook endpoint (``[[webhooks.endpoints]]``); unset numbers take the section's value."""

    url: str
    format: Literal["native", "alertmanager", "slack"] = "native"
    name: str | None = Field(default=None, description="label in logs and metrics (default host:port-<id>)")
    secret_env: str | None = Field(default=None, description="environment variable holding the secret(s)")
    secret_file: Path | None = Field(default=None, description="file holding the secret(s)")
    connect_timeout_s: float | None = Field(default=None, gt=0, le=300)
    timeout_s: float | None = Field(default=None, gt=0, le=300, description="read timeout")
    group_wait_s: float | None = Field(default=None, ge=0, le=3600)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        return _check_http_url(url)


class WebhookSettings(_Section):
    """Where and how alerts are delivered (durable outbox + one worker per endpoint)."""

    urls: list[str] = Field(default_factory=list, description="each a native endpoint with the section defaults")
    endpoints: list[EndpointSettings] = Field(default_factory=list)
    timeout_s: float = Field(default=5.0, gt=0, le=300, description="read timeout per attempt, seconds")
    connect_timeout_s: float = Field(default=3.0, gt=0, le=300)
    retry_schedule_s: list[float] = Field(
        default_factory=lambda: list(DEFAULT_RETRY_SCHEDULE_S), min_length=1, max_length=50,
        description="nominal delay before each attempt (modelled on Standard Webhooks)",
    )
    retry_cap_s: float = Field(default=86400.0, gt=0, description="largest delay, also caps Retry-After")
    retry_jitter: bool = Field(default=True, description="full jitter: each delay uniform in [0, nominal]")
    secret_env: str | None = Field(default=None, description="secret(s) of the `urls` endpoints: a variable name")
    secret_file: Path | None = Field(default=None, description="secret(s) of the `urls` endpoints: a file")
    group_wait_s: float = Field(default=0.0, ge=0, le=3600, description="0 = one notification per alert")
    external_url: str = Field(default="", description="externalURL/generatorURL of Alertmanager bodies")
    outbox_path: Path = Field(default=Path("var/outbox.sqlite"), description="SQLite outbox (relative: to cwd)")
    drain_timeout_s: float = Field(default=10.0, ge=0, le=600, description="delivery wait at shutdown")

    @field_validator("urls")
    @classmethod
    def _http_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            _check_http_url(url)
        return urls

    @field_validator("retry_schedule_s")
    @classmethod
    def _delays(cls, delays: list[float]) -> list[float]:
        if any(d < 0 for d in delays):
            raise ValueError("retry delays must be >= 0 seconds")
        return delays

    @model_validator(mode="after")
    def _distinct_urls(self) -> "WebhookSettings":
        seen = self.urls + [e.url for e in self.endpoints]
        if len(set(seen)) != len(seen):
            raise ValueError("a webhook URL is listed twice (urls and endpoints together)")
        names = [e.name for e in self.endpoints if e.name]
        if len(set(names)) != len(names):
            raise ValueError("two webhook endpoints have the same name")
        return self

    def all_endpoints(self) -> list[EndpointSettings]:
        """``urls`` (as native endpoints) then ``endpoints``, every unset value filled from the section."""
        out = [EndpointSettings(url=u, secret_env=self.secret_env, secret_file=self.secret_file) for u in self.urls]
        out += self.endpoints
        return [
            e.model_copy(update={
                "connect_timeout_s": e.connect_timeout_s or self.connect_timeout_s,
                "timeout_s": e.timeout_s or self.timeout_s,
                "group_wait_s": self.group_wait_s if e.group_wait_s is None else e.group_wait_s,
            })
            for e in out
        ]


class TrainingSettings(_Section):
    """The scheduled model refresh (``finsentry refresh``)."""

    refresh_cron: str | None = Field(default=None, description="crontab line, UTC, e.g. '0 3 * * 0' (Sunday 03:00); None = off")
    refresh_data_dir: Path | None = Field(default=None, description="folder of your labelled sentiment files")
    registry: Path = Field(default=REPO_ROOT / "models", description="model registry to publish into")
    misfire_grace_s: float = Field(default=6 * 3600, gt=0, description="a run later than this is skipped")
    train_args: list[str] = Field(default_factory=list, description="extra `finsentry train` arguments")

    @field_validator("refresh_cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        return _check_cron(value)


class OpsSettings(_Section):
    """The operations endpoint (``/healthz``, ``/readyz``, ``/metrics``)."""

    host: str = Field(default="127.0.0.1", min_length=1, description="bind address of the ops endpoint")
    port: int = Field(default=0, ge=0, le=65535, description="TCP port of the ops endpoint; 0 = off")
    reload_check_s: float | None = Field(default=None, ge=0, description="deprecated alias of "
                                         "jobs.refresh_interval_s (older configs and scripts); wins when set")
    stall_s: float = Field(default=120.0, gt=0, description="/healthz fails when the poll loop has not turned "
                           "for this long, seconds")


def _check_cron(value: str | None) -> str | None:
    if value:
        from training import cron_trigger  # light: no torch

        cron_trigger(value)  # ValueError names what is wrong
    return value or None


class JobsSettings(_Section):
    """Scheduled jobs inside the daemon (APScheduler): model refresh, daily digest, housekeeping.

    The digest runs once per period per consumer group (owner: the member
    holding partition 0 of the raw topic, plus a claim per period in
    ``kafka.jobs_topic``); refresh and housekeeping act on each daemon's own
    model and outbox and run in every daemon. See docs/operations.md.
    """

    enabled: bool = Field(default=True, description="false: no scheduler (no hot reload, digest or housekeeping)")
    refresh_interval_s: float = Field(default=10.0, ge=0, description="seconds between reads of the model "
                                      "registry's DEFAULT (hot reload); 0 = off")
    digest_cron: str | None = Field(default=None, description="digest webhook, crontab line, UTC (6 fields: "
                                    "seconds first), e.g. '0 0 * * *' daily at midnight; unset = off (a receiver "
                                    "must accept the digest body besides alerts)")
    digest_hours: float = Field(default=24.0, gt=0, le=24 * 31, description="span the digest summarises, hours "
                                "before its scheduled time")
    housekeeping_cron: str | None = Field(default="30 3 * * *", description="outbox pruning, crontab line, UTC; "
                                          "empty = off")
    misfire_grace_s: float = Field(default=3600.0, gt=0, le=7 * 86400, description="a run later than this after "
                                   "its scheduled time is skipped (counted as missed)")
    retention_hours: float = Field(default=168.0, gt=0, description="housekeeping deletes outbox messages "
                                   "delivered longer ago than this")
    tally_interval_s: float = Field(default=60.0, gt=0, le=3600, description="how often each daemon publishes "
                                    "its counters for the digest (the digest's figures are at most this stale)")

    @field_validator("digest_cron", "housekeeping_cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        return _check_cron(value)


class Settings(BaseSettings):
    """All of finsentry's settings (see the module docstring for sources)."""

    model_config = SettingsConfigDict(
        env_prefix="FINSENTRY_", env_nested_delimiter="__", extra="forbid", nested_model_default_partial_update=True
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    windows: WindowSettings = Field(default_factory=WindowSettings)
    detector: DetectorSettings = Field(default_factory=DetectorSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    ops: OpsSettings = Field(default_factory=OpsSettings)
    jobs: JobsSettings = Field(default_factory=JobsSettings)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = Field(default="text", description="json: one JSON object per line")

    @model_validator(mode="after")
    def _paused_poll_within_poll_interval(self) -> "Settings":
        if self.batch.paused_poll_ms * 2 > self.kafka.max_poll_interval_ms:
            raise ValueError(f"batch.paused_poll_ms ({self.batch.paused_poll_ms}) must be at most half of "
                             f"kafka.max_poll_interval_ms ({self.kafka.max_poll_interval_ms}), or a slow batch "
                             "costs the group membership")
        return self

    @model_validator(mode="after")
    def _reload_alias(self) -> "Settings":
        if self.ops.reload_check_s is not None:  # the key the hot reload had before it became a scheduled job
            self.jobs.refresh_interval_s = self.ops.reload_check_s
        return self

    @model_validator(mode="after")
    def _retention_beyond_windows(self) -> "Settings":
        span_h = (self.windows.size_minutes + self.windows.allowed_lateness_minutes) / 60.0
        if self.jobs.retention_hours <= 2 * span_h:
            raise ValueError(f"jobs.retention_hours ({self.jobs.retention_hours:g}) must exceed twice the window "
                             f"size plus the allowed lateness ({2 * span_h:g} h): a rebuilt window must still "
                             "find its alert in the outbox, or it would be sent again")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_file = _TOML_FILE.get("path")
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


# The TOML path for the load in progress (pydantic-settings builds sources per class).
_TOML_FILE: dict[str, Path | None] = {"path": None}


def _format_errors(exc: ValidationError, origin: str) -> str:
    lines = [f"invalid configuration ({origin}):"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "<root>"
        got = err.get("input")
        shown = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"  {key}: {err['msg']}{shown}")
    return "\n".join(lines)


def load_settings(path: Path | str | None = None, **overrides: Any) -> Settings:
    """Load settings from an optional TOML file, the environment and overrides.

    Args:
        path: TOML file; defaults to ``$FINSENTRY_CONFIG`` when set.
        **overrides: top-level sections as dicts or section objects.

    Raises:
        ConfigError: the file is missing or not TOML, or a key is unknown or
            has a bad value; the message names every bad key and the reason.
    """
    if path is None and os.environ.get("FINSENTRY_CONFIG"):
        path = os.environ["FINSENTRY_CONFIG"]
    toml_path = Path(path) if path is not None else None
    if toml_path is not None and not toml_path.is_file():
        raise ConfigError(f"config file {toml_path} does not exist")
    origin = f"file {toml_path} + environment" if toml_path else "environment"
    _TOML_FILE["path"] = toml_path
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, origin)) from None
    except ValueError as exc:  # tomllib.TOMLDecodeError is a ValueError
        raise ConfigError(f"config file {toml_path} could not be read: {exc}") from None
    finally:
        _TOML_FILE["path"] = None
