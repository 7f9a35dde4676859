"""`callmeter-exporter gate` options: the command line, checked once, as one frozen value.

The connection settings (key, base URL, plan, budget share, packet-loss unit, ...) are the exporter's
own `Settings`, with the same CALLMETER_* variables and flags; the rest is the gate's. Any problem
is a `UsageError` (or the settings' `SettingsError`) holding one line: exit code 2.
"""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from .. import __version__
from ..flags import Parser, add_setting, setting_overrides
from ..settings import Settings, load
from .judge import GATES, PROBE_RANK

SETTINGS = ("api_key", "api_key_file", "base_url", "plan", "requests_per_minute", "budget_share",
            "packet_loss_unit", "http_timeout", "log_format", "log_level", "demo")
"""The exporter settings the gate reads; the others (listen address, floors, ...) do not concern it."""
HELP = {"log_level": ("Level of the client's log lines, apart from the gate's own progress lines.", "error"),
        "log_format": ("json, console, or auto (console on a terminal, else json).", "console"),
        "demo": ("Run against the built-in CallMeter simulator (its first test always completes); no key needed.",
                 None)}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smh]?)")


class UsageError(Exception):
    """A gate option is wrong; the message is one line fit to print as is."""


@dataclass(frozen=True)
class GateOptions:
    settings: Settings
    project: str
    test: str | None = None
    probe: str | None = None
    run_id: str | None = None
    limits: dict[str, float] = field(default_factory=dict)
    """Gate option name (`min_mos`) -> limit in the option's unit."""
    allow_missing: bool = False
    min_probe_status: str = "HEALTHY"
    timeout: float | None = None
    """Seconds for the whole gate; None: the test's duration plus 15 minutes (probes: 10 minutes)."""
    budget_per_minute: float = 2.0
    quiet: bool = False
    json: bool = False
    junit_xml: Path | None = None
    pushgateway: str | None = None

    @property
    def kind(self) -> Literal["test", "probe"]:
        return "probe" if self.probe is not None else "test"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="callmeter-exporter gate",
        description="CI/CD quality gate: trigger a CallMeter test run (or judge an existing one with --run-id), "
                    "or trigger a probe execution; wait for the result within a request budget; judge it; "
                    "exit 0 passed, 1 gate failed, 2 usage error, 3 run FAILED or CANNOT_RUN_FOR_NOW (probe: "
                    "UNKNOWN), 4 timed out, 5 API unusable (401, 403, network).",
        epilog="Connection settings also come from the exporter's CALLMETER_* variables; a flag wins.")
    parser.add_argument("--version", action="version", version=f"callmeter-exporter {__version__}")
    target = parser.add_argument_group("what to judge")
    target.add_argument("--project", required=True, metavar="ID_OR_SLUG", help="project id or slug")
    which = target.add_mutually_exclusive_group(required=True)
    which.add_argument("--test", metavar="ID_OR_NAME", help="trigger a run of this test (id or exact name)")
    which.add_argument("--run-id", metavar="RUN_ID", help="judge this existing run; triggers nothing")
    which.add_argument("--probe", metavar="ID_OR_NAME", help="trigger an execution of this probe (id or exact name)")
    gates = parser.add_argument_group("gates (each optional; values in the units their names say)")
    for spec in GATES:
        gates.add_argument(spec.flag, dest=spec.option, metavar="N", default=None, help=spec.help)
    gates.add_argument("--allow-missing", action="store_true",
                       help="a gate whose field the summary leaves null is skipped instead of failing")
    gates.add_argument("--min-probe-status", default="HEALTHY", type=str.upper, choices=list(PROBE_RANK),
                       help="with --probe: worst status that passes (default HEALTHY)")
    waiting = parser.add_argument_group("waiting")
    waiting.add_argument("--timeout", metavar="DURATION", default=None,
                         help="give up (exit 4) after this long: seconds, or 90s, 20m, 1h; default: the test's "
                              "duration plus 15m (probe: 10m)")
    waiting.add_argument("--gate-requests-per-minute", metavar="N", default=None,
                         help="requests a minute the gate may send; default: what the exporter leaves free, "
                              "(1 - CALLMETER_BUDGET_SHARE) x the key's limit")
    waiting.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    out = parser.add_argument_group("reports")
    out.add_argument("--json", action="store_true", help="print the result as JSON on stdout instead of the table")
    out.add_argument("--junit-xml", metavar="PATH", default=None, help="write a JUnit XML report (one case per gate)")
    out.add_argument("--pushgateway", metavar="URL", default=None,
                     help="push the result to this Prometheus Pushgateway (job callmeter_gate)")
    connection = parser.add_argument_group("connection (the exporter's settings)")
    for name in SETTINGS:
        add_setting(connection, name, *HELP.get(name, (None, None)))
    return parser


def parse(argv: list[str]) -> GateOptions:
    """Options from the command line and CALLMETER_* variables; UsageError or SettingsError when wrong."""
    args = build_parser().parse_args(argv)
    settings = load(setting_overrides(args))
    if settings.demo:
        from ..simulator import DEMO_KEY_LIMIT

        settings = settings.model_copy(update={"plan": "enterprise", "requests_per_minute": DEMO_KEY_LIMIT})
    limits = {spec.option: _number(getattr(args, spec.option), spec.flag, spec.low, spec.high)
              for spec in GATES if getattr(args, spec.option) is not None}
    if args.probe is not None and limits:
        raise UsageError(f"{_flags_of(limits)} judge test runs; with --probe use --min-probe-status")
    if args.probe is None and args.min_probe_status != "HEALTHY":
        raise UsageError("--min-probe-status applies to --probe only")
    return GateOptions(
        settings=settings, project=_name(args.project, "--project"), test=_maybe(args.test, "--test"),
        probe=_maybe(args.probe, "--probe"), run_id=_maybe(args.run_id, "--run-id"), limits=limits,
        allow_missing=args.allow_missing, min_probe_status=args.min_probe_status,
        timeout=None if args.timeout is None else parse_duration(args.timeout, "--timeout"),
        budget_per_minute=_budget(args.gate_requests_per_minute, settings), quiet=args.quiet, json=args.json,
        junit_xml=_report_path(args.junit_xml), pushgateway=_pushgateway(args.pushgateway))


def _flags_of(limits: dict[str, float]) -> str:
    return ", ".join(spec.flag for spec in GATES if spec.option in limits)


def _name(value: str, flag: str) -> str:
    value = value.strip()
    if not value:
        raise UsageError(f"{flag} is empty")
    return value


def _maybe(value: str | None, flag: str) -> str | None:
    return None if value is None else _name(value, flag)


def _number(text: str, flag: str, low: float, high: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{flag} must be a number from {low:g} to {high:g}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise UsageError(f"{flag} must be a number from {low:g} to {high:g}")
    return value


def parse_duration(text: str, flag: str) -> float:
    """Seconds from `900`, `90s`, `20m` or `1h`."""
    match = _DURATION.fullmatch(text.strip().lower())
    seconds = float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)] if match else 0.0
    if seconds <= 0 or seconds > 7 * 86400:
        raise UsageError(f"{flag} must be a duration such as 900, 90s, 20m or 1h (at most a week)")
    return seconds


def _budget(text: str | None, settings: Settings) -> float:
    if text is not None:
        return _number(text, "--gate-requests-per-minute", 0.1, 100_000)
    free = settings.gate_requests_per_minute
    if free < 1:
        raise UsageError("CALLMETER_BUDGET_SHARE leaves the gate no requests of the key's limit: lower it, or "
                         "set --gate-requests-per-minute")
    return float(free)


def _report_path(text: str | None) -> Path | None:
    if text is None:
        return None
    path = Path(text)
    if not path.parent.is_dir():
        raise UsageError(f"--junit-xml: the folder {path.parent} does not exist")
    return path


def _pushgateway(text: str | None) -> str | None:
    if text is None:
        return None
    url = text.strip() if "://" in text else "http://" + text.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError("--pushgateway must be an http:// or https:// URL with a host, e.g. http://pushgateway:9091")
    return url.rstrip("/")
