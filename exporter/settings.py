"""Settings: environment variables prefixed CALLMETER_, overridden by command-line flags.

Validated once at start; `load()` turns any problem into `SettingsError` carrying one line that names
the setting and what is expected, and never the value (it may be the API key).
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PORT = 10190
PLAN_REQUESTS_PER_MINUTE = {"free": 10, "basic": 60, "pro": 120}
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}")


@dataclass(frozen=True, slots=True)
class Floors:
    """Refresh each class at most this often (seconds): the *_MIN_INTERVAL settings, as the planner takes them."""

    probes: float = 60.0
    test_runs: float = 60.0
    inventory: float = 900.0


class SettingsError(Exception):
    """A setting is wrong; the message is one line fit to print as is."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CALLMETER_", extra="ignore", hide_input_in_errors=True,
                                      validate_default=True)

    api_key: SecretStr | None = Field(default=None, description="CallMeter API key (cmk_...). Prefer the key file.")
    api_key_file: Path | None = Field(default=None, description="File holding the API key; re-read when it changes.")
    base_url: str = Field(default="https://callmeter.io/api/v1", description="CallMeter API base URL.")
    listen_address: str = Field(default=f":{DEFAULT_PORT}",
                                description="host:port to serve on (empty host: every interface).")
    telemetry_path: str = Field(default="/metrics", description="Path of the metrics endpoint.")
    plan: Literal["free", "basic", "pro", "enterprise"] = Field(
        default="free", description="CallMeter plan of the key: sets the rate limit (free 10, basic 60, pro 120 "
                                    "a minute; enterprise: give CALLMETER_REQUESTS_PER_MINUTE).")
    requests_per_minute: int | None = Field(
        default=None, ge=1, le=100_000,
        description="The key's rate limit per minute; overrides the plan. Required for enterprise.")
    budget_share: float = Field(default=0.8, gt=0, le=1,
                                description="Share of the key's rate limit this exporter may spend; the rest is left "
                                            "for CI pipelines and people.")
    projects: str = Field(default="",
                          description="Comma-separated project ids or slugs to export; empty: every project.")
    packet_loss_unit: Literal["percent", "fraction"] = Field(
        default="percent", description="Unit of avgPacketLossFraction as the API sends it.")
    http_timeout: float = Field(default=10.0, gt=0, le=300, description="Seconds before an API request times out.")
    max_concurrency: int = Field(default=4, ge=1, le=64,
                                 description="Most API requests in flight at once (matters for large budgets).")
    schedule: Literal["adaptive", "fixed"] = Field(
        default="adaptive", description="adaptive: read probe lists when probes execute and runs when they should "
                                        "end; fixed: every list on a fixed clock.")
    probes_min_interval: float = Field(default=60.0, ge=1, description="Refresh probe lists at most this often (s).")
    probes_max_interval: float = Field(
        default=300.0, ge=10, description="Adaptive: read each project's probe list at least this often (s), for "
                                          "executions off their schedule and configuration changes.")
    test_runs_min_interval: float = Field(default=60.0, ge=1,
                                          description="Refresh test-run lists at most this often (s).")
    inventory_min_interval: float = Field(
        default=900.0, ge=1, description="Refresh projects, tests, registrars at most this often (s).")
    run_lookback_pages: int = Field(
        default=3, ge=1, le=100,
        description="Run-list pages read back on a cold start to find each test's latest run.")
    run_endpoints: Literal["auto", "on", "off"] = Field(
        default="auto", description="Endpoint outcomes of each test's latest completed run (one request per 100 "
                                    "endpoints, once per run): auto, only while the budget has room; on, with a "
                                    "share of the budget; off.")
    config_details: Literal["auto", "off"] = Field(
        default="auto", description="Probe thresholds and test settings (one request per probe and per test every "
                                    "inventory interval): auto, only while the budget has room; off.")
    max_data_age: float | None = Field(
        default=None, gt=0,
        description="Seconds after which cached values are no longer served; default: 3x the achieved interval, "
                    "at least 15 minutes.")
    state_file: Path | None = Field(
        default=None, description="File that keeps what the exporter knows across restarts (data, counters, "
                                  "schedule); its folder must exist and be writable. Default: none (start cold).")
    web_config_file: Path | None = Field(default=None,
                                         description="exporter-toolkit web config (TLS, basic auth) for /metrics.")
    web_max_connections: int = Field(
        default=512, ge=8, le=65536,
        description="Open connections each listener keeps at most; at the cap, one waiting on a half-sent head, "
                    "else the longest idle, is closed to make room.")
    web_header_timeout: float = Field(
        default=10.0, gt=0, le=30,
        description="Seconds a client has to send a whole request head once it has begun (at most 30).")
    web_idle_timeout: float = Field(
        default=75.0, gt=0, le=3600, description="Seconds an idle keep-alive connection is kept open.")
    webhook_body_timeout: float = Field(
        default=10.0, gt=0, le=300, description="Seconds a webhook delivery's body has to arrive in full.")
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", description="json, console, or auto (console on a terminal, else json).")
    log_level: Literal["debug", "info", "warning", "error"] = Field(default="info", description="Log level.")
    demo: bool = Field(default=False, description="Serve data from the built-in CallMeter simulator; no key needed.")
    webhook_secret: SecretStr | None = Field(
        default=None, description="Secret of a CallMeter probe webhook; turns the webhook receiver on. "
                                  "Prefer the secret file.")
    webhook_secret_file: Path | None = Field(
        default=None, description="File of webhook secrets, one per line; turns the receiver on; re-read when it "
                                  "changes.")
    webhook_path: str = Field(default="/webhooks/callmeter", description="Path the webhook receiver answers on.")
    webhook_listen_address: str | None = Field(
        default=None, description="host:port to serve the receiver on alone (e.g. behind an Ingress); "
                                  "default: on the listen address.")
    webhook_signature_header: str = Field(default="X-CallMeter-Signature",
                                          description="Header holding the HMAC-SHA256 signature of the body.")
    webhook_timestamp_header: str = Field(
        default="X-CallMeter-Timestamp",
        description="Header holding the delivery's time, where CallMeter sends one (Unix seconds or ISO 8601).")
    webhook_timestamp_tolerance: float = Field(
        default=300.0, ge=0, le=86400,
        description="Deliveries whose timestamp is further than this from now (s) are rejected; 0: not checked.")

    @field_validator("log_level", "log_format", "plan", "packet_loss_unit", "schedule", "run_endpoints",
                     "config_details", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("api_key", mode="before")
    @classmethod
    def _key_shape(cls, value: Any) -> Any:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if raw is None:
            return None
        check_key(raw)
        return value

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host, e.g. https://callmeter.io/api/v1")
        return value.rstrip("/")

    @field_validator("state_file")
    @classmethod
    def _state_folder(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        if value.is_dir():
            raise ValueError(f"{value} is a folder; name a file in it, e.g. {value / 'state.json'}")
        folder = value.parent
        if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
            raise ValueError(f"the folder {folder} does not exist or is not writable by this user")
        return value

    @field_validator("listen_address")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen_address(value)
        return value

    @field_validator("telemetry_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or value in ("/", "/healthz", "/readyz") or " " in value:
            raise ValueError("must be a path such as /metrics, other than /, /healthz and /readyz")
        return value

    @field_validator("webhook_path")
    @classmethod
    def _webhook_path(cls, value: str) -> str:
        if (not value.startswith("/") or value in ("/", "/healthz", "/readyz") or "?" in value
                or any(ch.isspace() for ch in value)):
            raise ValueError("must be a path such as /webhooks/callmeter, other than /, /healthz and /readyz")
        return value

    @field_validator("webhook_listen_address", mode="before")
    @classmethod
    def _webhook_listen(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not value.strip():
                return None
            parse_listen_address(value.strip())
            return value.strip()
        return value

    @field_validator("webhook_signature_header", "webhook_timestamp_header")
    @classmethod
    def _header_name(cls, value: str) -> str:
        if not _HEADER_NAME.fullmatch(value):
            raise ValueError("must be an HTTP header name such as X-CallMeter-Signature")
        return value

    @field_validator("webhook_secret", mode="before")
    @classmethod
    def _webhook_secret_shape(cls, value: Any) -> Any:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if raw is None:
            return None
        check_webhook_secret(raw)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.plan == "enterprise" and self.requests_per_minute is None:
            raise ValueError("CALLMETER_REQUESTS_PER_MINUTE is required with plan enterprise (its limit is custom)")
        if self.probes_max_interval < self.probes_min_interval:
            raise ValueError("CALLMETER_PROBES_MAX_INTERVAL must be at least CALLMETER_PROBES_MIN_INTERVAL")
        if not self.demo and self.api_key is None and self.api_key_file is None:
            raise ValueError("no API key: set CALLMETER_API_KEY_FILE or CALLMETER_API_KEY (or run --demo)")
        if self.webhook_secret is not None and self.webhook_secret_file is not None:
            raise ValueError("set CALLMETER_WEBHOOK_SECRET_FILE or CALLMETER_WEBHOOK_SECRET, not both")
        if self.webhook_listen_address is not None:
            if not self.webhooks_enabled:
                raise ValueError("CALLMETER_WEBHOOK_LISTEN_ADDRESS needs CALLMETER_WEBHOOK_SECRET_FILE or "
                                 "CALLMETER_WEBHOOK_SECRET (the receiver is off without a secret)")
            if parse_listen_address(self.webhook_listen_address) == self.host_port:
                raise ValueError("CALLMETER_WEBHOOK_LISTEN_ADDRESS must differ from CALLMETER_LISTEN_ADDRESS; leave "
                                 "it empty to serve the receiver on the listen address")
        if self.webhooks_enabled and self.webhook_path == self.telemetry_path:
            raise ValueError("CALLMETER_WEBHOOK_PATH must differ from CALLMETER_TELEMETRY_PATH")
        return self

    @property
    def webhooks_enabled(self) -> bool:
        """The receiver is on when a webhook secret, or a file of them, is set."""
        return self.webhook_secret is not None or self.webhook_secret_file is not None

    @property
    def key_limit_per_minute(self) -> int:
        """The key's own rate limit, as the plan or the explicit setting says."""
        return self.requests_per_minute or PLAN_REQUESTS_PER_MINUTE.get(self.plan, 10)

    @property
    def budget_per_minute(self) -> float:
        """What this exporter allows itself: the key's limit times the budget share."""
        return self.key_limit_per_minute * self.budget_share

    @property
    def budget_window_cap(self) -> int:
        """Requests this exporter sends in any 60-second window at most: its share of the key's limit,
        rounded down (at least 1). Computed on the share as written (0.8 is 4/5): in binary floating
        point 100 x 0.29 is 28.999999999999996, and int() of it would lose a request."""
        return max(1, math.floor(self.key_limit_per_minute * Fraction(repr(self.budget_share))))

    @property
    def gate_requests_per_minute(self) -> int:
        """What the exporter leaves of the key's limit, for `callmeter-exporter gate`: the limit minus
        the exporter's window cap, so that the two together never hold more than the limit in a window
        and lose nothing to rounding (Free 2, Basic 12, Pro 24 at the default share of 0.8)."""
        return self.key_limit_per_minute - self.budget_window_cap

    @property
    def floors(self) -> Floors:
        """The *_MIN_INTERVAL settings, as the planner takes them."""
        return Floors(self.probes_min_interval, self.test_runs_min_interval, self.inventory_min_interval)

    @property
    def project_filter(self) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.projects.split(",") if p.strip())

    @property
    def host_port(self) -> tuple[str, int]:
        return parse_listen_address(self.listen_address)


def check_key(raw: str) -> str:
    """Raise ValueError naming what is wrong with a key, never echoing it."""
    if not raw:
        raise ValueError("is empty; expected a key that starts with cmk_")
    if any(ch.isspace() for ch in raw):
        raise ValueError("holds whitespace; expected a single token that starts with cmk_")
    if not raw.startswith("cmk_") or len(raw) == len("cmk_"):
        raise ValueError("does not look like a CallMeter key; expected one that starts with cmk_")
    return raw


def check_webhook_secret(raw: str) -> str:
    """Raise ValueError naming what is wrong with a webhook secret, never echoing it."""
    if not raw:
        raise ValueError("is empty; expected the secret CallMeter shows for the webhook")
    if any(ch.isspace() for ch in raw) or not raw.isprintable():
        raise ValueError("holds whitespace or control characters; expected a single token")
    return raw


def read_webhook_secrets(path: Path) -> tuple[str, ...]:
    """The secrets in a file, one per line; blank lines and lines starting with # are skipped."""
    source = "CALLMETER_WEBHOOK_SECRET_FILE"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not readable as UTF-8 text"
        raise SettingsError(f"{source}: cannot read {path}: {reason}") from None
    secrets = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            secrets.append(check_webhook_secret(line))
        except ValueError as exc:
            raise SettingsError(f"{source}: the secret on line {number} of {path} {exc}") from None
    if not secrets:
        raise SettingsError(f"{source}: {path} holds no secret; expected one secret per line")
    return tuple(dict.fromkeys(secrets))


def parse_listen_address(value: str) -> tuple[str, int]:
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError("must be host:port with a port from 1 to 65535, e.g. :10190 or 127.0.0.1:10190")
    host = host.strip("[]")
    if host and host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if not all(part.isalnum() or "-" in part for part in host.split(".")):
                raise ValueError("has an invalid host; use an IP address, a hostname or nothing") from None
    return host, int(port_text)


def read_key_file(path: Path) -> str:
    """The key held in a file (surrounding whitespace, such as the trailing newline, removed)."""
    try:
        raw = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SettingsError(f"CALLMETER_API_KEY_FILE: cannot read {path}: {exc.strerror or exc}") from None
    try:
        return check_key(raw)
    except ValueError as exc:
        raise SettingsError(f"CALLMETER_API_KEY_FILE: the key in {path} {exc}") from None


def env_name(field: str) -> str:
    return "CALLMETER_" + field.upper()


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def load(overrides: dict[str, Any] | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Settings from the environment with `overrides` (the flags) on top; SettingsError when invalid."""
    saved = None
    if environ is not None:
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(environ)
    try:
        settings = Settings(**{k: v for k, v in (overrides or {}).items() if v is not None})
        if settings.api_key_file is not None and not settings.demo:
            read_key_file(settings.api_key_file)
        if settings.webhook_secret_file is not None:
            read_webhook_secrets(settings.webhook_secret_file)
        return settings
    except ValidationError as exc:
        raise SettingsError(describe(exc)) from None
    finally:
        if saved is not None:
            os.environ.clear()
            os.environ.update(saved)


def describe(exc: ValidationError) -> str:
    """One line for the first problem: the setting's names and what is expected, never its value."""
    error = exc.errors(include_input=False, include_url=False)[0]
    message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
    loc = [str(part) for part in error.get("loc", ()) if isinstance(part, str)]
    if not loc:
        return message
    field = loc[0]
    return f"{env_name(field)} ({flag_name(field)}): {message}"
