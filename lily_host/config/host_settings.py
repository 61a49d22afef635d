"""The host's settings, from the environment (pydantic-settings). Plugins bring their own models."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from lily_host.plugin_api.errors import ConfigurationError
from lily_host.plugin_api.tenant import parse_jitter
from lily_host.plugin_api.validators import split_comma_list

Environment = Literal["development", "production", "test"]


class HostSettings(BaseSettings):
    """Every ``LILY_*`` variable plus ``REDIS_URL``. See docs/operations.md for each one."""

    model_config = SettingsConfigDict(env_prefix="LILY_", extra="ignore", populate_by_name=True)

    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    # Sentinel: the primary named REDIS_SENTINEL_SERVICE, as these sentinels see it (config/redis_connection.py).
    redis_sentinels: Annotated[list[str], NoDecode] = Field(default_factory=list, validation_alias="REDIS_SENTINELS")
    redis_sentinel_service: str | None = Field(default=None, validation_alias="REDIS_SENTINEL_SERVICE")
    redis_password: str | None = Field(default=None, validation_alias="REDIS_PASSWORD")
    # Cluster: REDIS_URL names a seed node of a Redis Cluster (or use redis+cluster://h1:p1,h2:p2).
    redis_cluster: bool = Field(default=False, validation_alias="REDIS_CLUSTER")
    #: Replicas that must hold a webhook's commit before it is answered 2xx (Redis WAIT); 0: none.
    redis_min_replicas: int = Field(default=0, ge=0, le=16)
    #: How long the commit waits for them before the webhook answers 503 (the provider retries).
    redis_replica_timeout: float = Field(default=1.0, gt=0, le=60)
    env: Environment = "development"
    public_url: str = "http://localhost:8000"
    admin_token: str | None = None
    secret_key: Annotated[list[str], NoDecode] = Field(default_factory=list)
    jitter_seconds: str = "10-45"
    max_webhook_bytes: int = Field(default=1024 * 1024, ge=1024)
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["127.0.0.1", "::1"])
    strict_plugins: bool = False
    #: LILY_TRACE_HOOKS=1 logs every hook call through pluggy's tracer (arguments and results).
    trace_hooks: bool = False
    dev_credentials: bool = False
    sms_channel: str | None = None
    sms_daily_cap: int = Field(default=5, ge=1, le=1000)
    tenant_cache_seconds: float = Field(default=1.0, ge=0, le=60)
    plugins: Annotated[list[str], NoDecode] | None = None
    disable_plugins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Load shedding (lily_host/web/load_shedding.py). A source's rejected webhooks: burst, then per second.
    bad_request_burst: int = Field(default=50, ge=0)
    bad_request_rate: float = Field(default=5.0, ge=0)
    #: Seconds a 429 to such a source is held before it is sent: each of its connections slows down.
    bad_request_hold: float = Field(default=1.0, ge=0, le=30)
    #: Webhooks answer 503 past this many ready tasks / this Redis round trip (0: not watched).
    shed_backlog: int = Field(default=0, ge=0)
    shed_redis_ms: float = Field(default=0.0, ge=0)
    shed_retry_after: int = Field(default=30, ge=1, le=3600)
    #: The tenant API, per key: requests a minute on average (0: no limit) and at once.
    api_rate_per_minute: int = Field(default=600, ge=0)
    api_burst: int = Field(default=60, ge=1)
    queue_name: str = "default"
    health_timeout: float = Field(default=5.0, gt=0)
    #: Seconds between two provider checks of one tenant (spread over time, cached in between).
    health_tenant_interval: float = Field(default=300.0, ge=1)
    #: Most per-tenant provider checks one /health call starts (the rest wait for later calls).
    health_tenant_batch: int = Field(default=100, ge=1, le=10000)
    webhook_log: bool = True
    #: Retention of log entries no tenant could be named for (a tenant's own: its retention_days).
    webhook_log_days: float = Field(default=7.0, gt=0)
    webhook_log_max_entries: int = Field(default=10000, ge=100)
    webhook_log_body_bytes: int = Field(default=64 * 1024, ge=0)
    #: How long finished tasks' runs and the delivery → effects index are kept (0: not kept).
    trace_days: float = Field(default=7.0, ge=0)
    audit_days: float = Field(default=365.0, gt=0)
    integration_failures: int = Field(default=5, ge=1)
    integration_error_ratio: float = Field(default=0.5, gt=0, le=1)
    integration_min_calls: int = Field(default=10, ge=1)
    integration_window_seconds: float = Field(default=300.0, ge=60)
    data_dir: str = ".lily"
    log_level: str = "INFO"

    @field_validator("secret_key", "trusted_proxies", "disable_plugins", "redis_sentinels", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        return _split(value)

    @field_validator("plugins", mode="before")
    @classmethod
    def _split_optional(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return _split(value)

    @field_validator("jitter_seconds")
    @classmethod
    def _check_jitter(cls, value: str) -> str:
        parse_jitter(value)
        return value

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def jitter(self) -> tuple[float, float]:
        return parse_jitter(self.jitter_seconds)

    @property
    def secret_keys(self) -> list[str]:
        return self.secret_key

    @property
    def redis_configured(self) -> bool:
        """Whether a Redis is named at all (a URL or sentinels); ``lily dev`` embeds one otherwise."""
        return bool(self.redis_url or self.redis_sentinels)

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    def check_production(self) -> None:
        """In production, refuse to start without the settings that keep data and admin routes safe.

        Every problem is reported at once: fixing one per deploy is a slow way to learn the list.
        """
        if not self.is_production:
            return
        problems = []
        if not self.admin_token:
            problems.append("LILY_ADMIN_TOKEN is required")
        if not self.secret_key:
            problems.append("LILY_SECRET_KEY is required (generate one with `lily keygen`)")
        if not self.redis_configured:
            problems.append("REDIS_URL (or REDIS_SENTINELS + REDIS_SENTINEL_SERVICE) is required")
        if not self.public_url.startswith("https://"):
            problems.append(f"LILY_PUBLIC_URL={self.public_url!r} must be an https:// URL")
        if self.admin_token and not strong_token(self.admin_token):
            problems.append(
                f"LILY_ADMIN_TOKEN is too weak: use at least {MIN_ADMIN_TOKEN_CHARS} random characters; "
                f"make one with: {ADMIN_TOKEN_COMMAND}"
            )
        if problems:
            raise ConfigurationError("with LILY_ENV=production: " + "; ".join(problems))


#: Production's admin token: long and varied enough that guessing it (throttled) is hopeless.
MIN_ADMIN_TOKEN_CHARS = 32
MIN_ADMIN_TOKEN_DISTINCT = 12
ADMIN_TOKEN_COMMAND = """python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"""


def strong_token(token: str) -> bool:
    """At least 32 characters, of at least 12 different ones (a random 32-char hex or base64 token passes)."""
    return len(token) >= MIN_ADMIN_TOKEN_CHARS and len(set(token)) >= MIN_ADMIN_TOKEN_DISTINCT


def _split(value: object) -> object:
    return split_comma_list(value)
