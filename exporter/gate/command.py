"""`callmeter-exporter gate`: options in; verdict, reports and push out; the exit code a CI job reads."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from typing import TextIO

from .. import logs
from ..api.keysource import KeySource
from ..settings import SettingsError
from . import report
from .flow import gate
from .judge import API_ERROR, USAGE, Verdict
from .options import GateOptions, UsageError, parse
from .push import push

PREFIX = "callmeter-exporter gate"


def main(argv: list[str]) -> int:
    try:
        options = parse(argv)
    except (UsageError, SettingsError) as exc:
        print(f"{PREFIX}: {exc}", file=sys.stderr)
        return USAGE
    _configure_logs(argv, options)
    try:
        verdict = asyncio.run(_run(options))
    except KeyboardInterrupt:
        return 130
    finally:
        logs.forget_secrets()
    emit(verdict, options, sys.stdout, sys.stderr, os.environ)
    return verdict.exit_code


async def _run(options: GateOptions) -> Verdict:
    if not options.settings.demo:
        return await gate(options)
    from ..simulator import DEMO_KEY, DEMO_KEY_LIMIT, Simulator, SimulatorServer, WorldConfig

    world = WorldConfig(run_period=600.0, run_duration=20.0, probe_interval_minutes=60.0)
    simulator = Simulator(world, rate_limit_per_minute=DEMO_KEY_LIMIT)
    for test in simulator.world.tests.values():
        if test.name.endswith(" 1"):
            simulator.plan_test_runs(test.id, outcome="COMPLETED")  # the first test of each project passes
    with SimulatorServer(simulator) as server:
        print(f"{PREFIX} demo: simulated CallMeter API at {server.base_url} (projects production and staging; "
              "tests 'Production call quality 1' to 4, the first always completes)", file=sys.stderr, flush=True)
        return await gate(options, key=KeySource(value=DEMO_KEY), base_url=server.base_url)


def _configure_logs(argv: list[str], options: GateOptions) -> None:
    """The gate's own lines tell the story: the client's log lines show only at --log-level debug, or
    when a log level is set explicitly."""
    def given(flag: str, variable: str) -> bool:
        return any(arg == flag or arg.startswith(flag + "=") for arg in argv) or variable in os.environ

    level = options.settings.log_level if given("--log-level", "CALLMETER_LOG_LEVEL") else "error"
    fmt = options.settings.log_format if given("--log-format", "CALLMETER_LOG_FORMAT") else "console"
    logs.configure(level=level, fmt=fmt)


def emit(verdict: Verdict, options: GateOptions, out: TextIO, err: TextIO, environ: Mapping[str, str]) -> None:
    """Every report the options ask for; a report that cannot be written is a warning, not a new verdict."""
    if verdict.exit_code in (USAGE, API_ERROR):
        err.write(f"{PREFIX}: {verdict.reason}\n")
    out.write(report.as_json(verdict) if options.json else report.table(verdict))
    out.flush()
    writes = []
    if options.junit_xml is not None:
        writes.append((str(options.junit_xml), report.junit_xml(verdict)))
    summary = environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        writes.append((summary, report.markdown(verdict)))
    for path, text in writes:
        try:
            with open(path, "a" if path == summary else "w", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as exc:
            err.write(f"{PREFIX}: warning: cannot write {path}: {exc.strerror or exc}\n")
    if options.pushgateway:
        try:
            push(options.pushgateway, verdict, timeout=options.settings.http_timeout)
        except Exception as exc:  # urllib raises a handful of types; a failed push must not change the verdict
            err.write(f"{PREFIX}: warning: push to the Pushgateway failed: {type(exc).__name__}: "
                      f"{logs.redact_text(str(exc))[:200]}\n")
    err.flush()
