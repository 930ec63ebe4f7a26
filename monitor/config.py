"""Settings: environment variables (prefix ``MONITOR_``) over an optional YAML file over defaults.

Each concern has its own section with its own prefix, so that the names stay short and stable:
``MONITOR_DATA_DIR``, ``MONITOR_DATABASE_URL``, ``MONITOR_KAFKA_BOOTSTRAP``, ``MONITOR_SCORER_BATCH_SIZE``,
``MONITOR_SMTP_HOST``... The YAML file (``--config FILE`` or ``MONITOR_CONFIG``) uses the same names
as nested keys (``kafka: {bootstrap: ...}``). Secrets can also come from files: ``MONITOR_SECRETS_DIR``
holds one file per setting, named like the variable (``MONITOR_SMTP_PASSWORD``).

Every bad value is reported, one line each, naming the variable or key and how to fix it; nothing
starts with a half-valid configuration.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from monitor.errors import UserError
from monitor.yamldoc import read_yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(UserError, ValueError):
    """Invalid configuration; ``str()`` is one line per problem, ready to print."""


def _section(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(
        env_prefix=prefix,
        extra="forbid",
        secrets_dir=os.environ.get("MONITOR_SECRETS_DIR") or None,
        case_sensitive=False,
    )


class TopicSettings(BaseModel):
    raw: str = "posts.raw"
    scored: str = "posts.scored"
    deadletter: str = "posts.deadletter"
    alerts: str = "alerts"


class KafkaSettings(BaseSettings):
    """Where Kafka is and how to reach it; unset ``bootstrap`` means the embedded broker."""

    model_config = _section("MONITOR_KAFKA_")

    bootstrap: str | None = None
    client_id: str = "monitor"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_check_hostname: bool = True
    partitions: int = Field(4, ge=1, le=1024)
    replication_factor: int = Field(1, ge=1, le=16)
    topics: TopicSettings = TopicSettings()
    # Tansu's group join waits session_timeout/2: the client default (45 s) makes every start slow.
    session_timeout_ms: int = Field(6000, ge=1000)
    heartbeat_interval_ms: int = Field(1000, ge=100)
    request_timeout_ms: int = Field(30000, ge=1000)
    bootstrap_timeout_ms: int = Field(10000, ge=100, description="how long to try to reach the cluster at start")
    compression: Literal["lz4", "none"] = "lz4"
    max_request_bytes: int = Field(1_048_576, ge=1024, description="largest message produced (the broker's limit)")

    @model_validator(mode="after")
    def _sasl_complete(self) -> "KafkaSettings":
        if self.security_protocol.startswith("SASL") and not (self.sasl_mechanism and self.sasl_username and self.sasl_password):
            raise ValueError("SASL needs MONITOR_KAFKA_SASL_MECHANISM, MONITOR_KAFKA_SASL_USERNAME and MONITOR_KAFKA_SASL_PASSWORD")
        return self


class ScorerSettings(BaseSettings):
    model_config = _section("MONITOR_SCORER_")

    group_id: str = "scorers"
    batch_size: int = Field(256, ge=1, le=100_000, description="most records per poll and per scored batch")
    poll_timeout_ms: int = Field(500, ge=1, description="longest wait for a batch to fill")
    model_path: Path | None = None
    device: str | None = None
    precision: Literal["fp32", "bf16", "fp16", "int8"] | None = Field(
        None, description="unset: bf16 on a GPU and on a CPU with bf16 units, else int8 (ONNX Runtime)")
    max_batch_tokens: int | None = Field(None, ge=64, description="token budget per model batch; unset: "
                                         "2048 on a CPU, 8192 on a GPU")
    threads: int | None = Field(None, ge=1, description="CPU threads for the model (default: all cores; "
                                "with N scorers on one machine give each cores/N)")
    max_text_chars: int = Field(10_000, ge=16, description="longer texts are truncated, and the truncation recorded")
    max_future_skew_s: float = Field(300.0, ge=0, description="created_at further ahead is clamped to receive time")
    store_retry_max_s: float = Field(30.0, gt=0, description="longest back-off between store retries")
    model_retries: int = Field(2, ge=0, description="tries of a failing post alone before it is dead-lettered")
    langid: Literal["accurate", "compact"] = Field(
        "accurate", description="language detection of posts without a language: compact saves up to ~320 MB "
        "for ~3 points of accuracy on short posts")


class AggregatorSettings(BaseSettings):
    model_config = _section("MONITOR_AGGREGATOR_")

    group_id: str = "aggregators"
    windows_s: list[int] = [60, 900, 3600]
    allowed_lateness_s: int = Field(600, ge=0)
    batch_size: int = Field(2000, ge=1)
    poll_timeout_ms: int = Field(500, ge=1)
    min_volume: int = Field(8, ge=1, description="fewer posts in a window never make an anomaly")
    baseline_windows: int = Field(24, ge=3, description="past windows a series is compared with")
    z_threshold: float = Field(4.0, gt=0, description="robust z (noise-stabilised) at which a window is an anomaly")
    aliases_file: Path | None = Field(None, description="company names -> tickers (YAML); unset: monitor/data/aliases.yaml")
    flush_interval_s: float = Field(1.0, gt=0, description="longest time between store writes (and offset commits)")
    evaluation_delay_s: float = Field(5.0, ge=0, description="event time after a window's end before it is first scored")
    warmup_windows: int = Field(6, ge=2, description="past windows needed before a series is scored at all")
    ewma_alpha: float = Field(0.2, gt=0, le=1, description="weight of the newest window in the EWMA chart")
    seasonality: Literal["none", "hour_of_week"] = Field("none", description="hour_of_week: baseline from the same hour in past weeks")
    season_weeks: int = Field(4, ge=1, le=52)
    risk_language_z: float = Field(2.5, gt=0, description="sentiment z at which a language counts as turned negative")
    max_future_skew_s: float = Field(300.0, ge=0, description="event times further ahead of the wall clock never advance event time")

    @field_validator("windows_s")
    @classmethod
    def _windows_valid(cls, v: list[int]) -> list[int]:
        if not v or min(v) < 1 or len(set(v)) != len(v):
            raise ValueError("windows_s must list distinct window sizes in seconds, e.g. [60, 900, 3600]")
        return sorted(v)


class SmtpSettings(BaseSettings):
    model_config = _section("MONITOR_SMTP_")

    host: str | None = None
    port: int = Field(25, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = False
    ssl: bool = False
    ca_file: Path | None = Field(None, description="CA bundle that signs the server's certificate (default: the system's)")
    sender: str = "monitor@localhost"
    timeout_s: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _one_tls_mode(self) -> "SmtpSettings":
        if self.ssl and self.starttls:
            raise ValueError("choose one of MONITOR_SMTP_SSL (implicit TLS, port 465) or MONITOR_SMTP_STARTTLS (port 587)")
        return self


class AlertSettings(BaseSettings):
    model_config = _section("MONITOR_ALERTS_")

    rules_file: Path | None = Field(None, description="unset: configs/rules.example.yaml")
    dashboard_url: str = "http://127.0.0.1:8501"
    webhook_timeout_s: float = Field(5.0, gt=0)
    delivery_retry_min_s: float = Field(5.0, gt=0, description="first back-off after a failed delivery, doubled each try")
    delivery_retry_max_s: float = Field(300.0, gt=0)
    tick_s: float = Field(5.0, gt=0, description="how often groups are flushed and the outbox is drained")
    digest_enabled: bool = True
    digest_at: str = Field("07:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="daily digest time, HH:MM UTC")


class DashboardSettings(BaseSettings):
    model_config = _section("MONITOR_DASHBOARD_")

    host: str = "127.0.0.1"
    port: int = Field(8501, ge=1, le=65535)
    password: SecretStr | None = None
    refresh_s: int = Field(5, ge=1)
    oidc_secrets_file: Path | None = Field(None, description="Streamlit secrets.toml whose [auth] section configures "
                                           "an OIDC login (st.login); needs `pip install 'streamlit[auth]'`")
    oidc_provider: str | None = Field(None, description="provider name when [auth] holds several ([auth.NAME])")
    max_posts: int = Field(500, ge=1, le=20_000, description="most posts one drill-down table shows")
    metrics_urls: list[str] = Field(default_factory=list, description="scorers' Prometheus endpoints for lag and "
                                    "throughput (default: the local one when MONITOR_METRICS_PORT is set)")


class Settings(BaseSettings):
    model_config = _section("MONITOR_")

    data_dir: Path = Path(".monitor")
    database_url: SecretStr | None = None
    model_cache: Path | None = None
    datasets_dir: Path = PROJECT_ROOT.parent / "shared" / "data"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    metrics_port: int | None = Field(None, ge=0, le=65535, description="Prometheus endpoint; 0 picks a free port")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    scorer: ScorerSettings = Field(default_factory=ScorerSettings)
    aggregator: AggregatorSettings = Field(default_factory=AggregatorSettings)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v

    @property
    def database_url_value(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.data_dir / 'monitor.db').resolve()}"

    @property
    def model_cache_dir(self) -> Path:
        return self.model_cache or self.data_dir / "models"


_SECTIONS: dict[str, type[BaseSettings]] = {
    name: info.annotation  # type: ignore[misc]
    for name, info in Settings.model_fields.items()
    if isinstance(info.annotation, type) and issubclass(info.annotation, BaseSettings)
}


def _env_name(cls: type[BaseSettings], loc: tuple) -> str:
    return str(cls.model_config.get("env_prefix", "")).upper() + "_".join(str(p) for p in loc if p != "__root__").upper()


def _format_errors(exc: ValidationError, cls: type[BaseSettings], origin: str) -> list[str]:
    lines = []
    for err in exc.errors():
        where = _env_name(cls, err["loc"]) if err["loc"] else str(cls.model_config.get("env_prefix", "")).rstrip("_")
        value = err.get("input")
        shown = "" if isinstance(value, dict) or "password" in where.lower() else f" (got {value!r})"
        lines.append(f"{where}{shown}: {err['msg']} [{origin}]")
    return lines


def _read_yaml(path: Path) -> dict[str, Any]:
    data = read_yaml(path, "config file (--config / MONITOR_CONFIG)", ConfigError).data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: the top level must be a mapping of settings")
    return data


def _build(cls: type[BaseSettings], file_values: dict[str, Any], origin: str, errors: list[str]) -> BaseSettings | None:
    """Environment wins over the file: take the file's values, then whatever the environment set."""
    try:
        from_env = cls()
    except ValidationError as exc:
        errors.extend(_format_errors(exc, cls, "environment"))
        return None
    values = {**file_values, **from_env.model_dump(include=from_env.model_fields_set)}
    try:
        return cls.model_validate(values)
    except ValidationError as exc:
        errors.extend(_format_errors(exc, cls, origin))
        return None


def load_settings(config_file: Path | str | None = None) -> Settings:
    """Validated settings, or ``ConfigError`` listing every bad value."""
    path = Path(config_file) if config_file else (Path(os.environ["MONITOR_CONFIG"]) if os.environ.get("MONITOR_CONFIG") else None)
    file_values = _read_yaml(path) if path else {}
    origin = str(path) if path else "defaults"
    errors: list[str] = []
    unknown = set(file_values) - set(Settings.model_fields)
    errors.extend(f"{origin}: unknown setting {key!r}" for key in sorted(unknown))
    sections = {}
    for name, cls in _SECTIONS.items():
        section_values = file_values.get(name) or {}
        if not isinstance(section_values, dict):
            errors.append(f"{origin}: {name} must be a mapping")
            continue
        sections[name] = _build(cls, section_values, origin, errors)
    top = {k: v for k, v in file_values.items() if k not in _SECTIONS and k not in unknown}
    settings = None
    if not errors:
        try:
            from_env = Settings(**sections)
            values = {**top, **from_env.model_dump(include=from_env.model_fields_set - set(_SECTIONS))}
            settings = Settings(**values, **sections)
        except ValidationError as exc:
            errors.extend(_format_errors(exc, Settings, origin))
    if errors:
        raise ConfigError("\n".join(errors))
    assert settings is not None
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings for library code that has none passed in."""
    return load_settings()


def redacted(settings: Settings) -> dict[str, Any]:
    """Settings as a dict with every secret masked (for ``monitor config show`` and logs)."""
    data = settings.model_dump(mode="json")
    url = settings.database_url_value
    data["database_url"] = redact_url(url)
    return data


def redact_url(url: str) -> str:
    """Mask the password of a URL, in the user part or a query parameter (``postgresql://u:***@h/db``)."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = original = urlsplit(url)
    if parts.password:
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@"))
    secret = {"password", "passwd", "pwd", "secret", "token", "sslpassword"}
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if any(k.lower() in secret for k, _ in pairs):
        parts = parts._replace(query=urlencode([(k, "***" if k.lower() in secret else v) for k, v in pairs], safe="*"))
    # Rebuilt only when something was masked: urlunsplit would turn sqlite:////abs/path into sqlite://abs/path.
    return url if parts == original else urlunsplit(parts)
