"""The gates: one row per option, judged on the same base-unit values the exporter publishes.

    GATES                       the table: option, summary value, minimum or maximum, valid range
    judge_run(run, limits, ...) -> (values, results)    one GateResult per gate asked for
    judge_probe(status, ...)    -> GateResult           the probe's health against --min-probe-status
    Verdict                     what the gate concluded; every report and the push read it

Exit codes (the CI contract, documented in docs/gate.md):

    0 PASSED       every gate passed
    1 GATE_FAILED  a gate failed (a null field counts, unless --allow-missing)
    2 USAGE        usage or configuration error
    3 RUN_FAILED   the run ended FAILED or CANNOT_RUN_FOR_NOW (a probe: UNKNOWN)
    4 TIMED_OUT    --timeout passed before the run or execution ended
    5 API_ERROR    the API could not be used (401, 403, network, 5xx)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..api.models import KNOWN_PROBE_STATUSES, TestRun
from ..expose.families import PacketLossUnit, quality_values

PASSED, GATE_FAILED, USAGE, RUN_FAILED, TIMED_OUT, API_ERROR = 0, 1, 2, 3, 4, 5
EXIT_NAMES = {PASSED: "passed", GATE_FAILED: "gate failed", USAGE: "usage error", RUN_FAILED: "run failed",
              TIMED_OUT: "timed out", API_ERROR: "API error"}
PROBE_RANK = {"HEALTHY": 0, "DEGRADED": 1, "UNHEALTHY": 2}
"""Probe states a gate can accept, best first; UNKNOWN means the execution left no result (exit 3)."""

Outcome = Literal["pass", "fail", "missing", "skipped"]


def _ms(value: float) -> str:
    return f"{value * 1000:.4g} ms"


def _percent(value: float) -> str:
    return f"{value * 100:.4g} %"


def _plain(value: float) -> str:
    return f"{value:.4g}"


@dataclass(frozen=True, slots=True)
class GateSpec:
    option: str
    """Attribute and flag name: `min_mos` is `--min-mos`."""
    value: str
    """Key of the judged value: a `quality_values` key, or `registration_failures`."""
    title: str
    api_field: str
    minimum: bool
    """True: the value must be at least the limit; False: at most."""
    low: float
    high: float
    show: Callable[[float], str]
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.option.replace("_", "-")

    @property
    def sign(self) -> str:
        return ">=" if self.minimum else "<="


GATES: tuple[GateSpec, ...] = (
    GateSpec("min_mos", "mos", "MOS", "avgMos", True, 1.0, 5.0, _plain, "lowest average MOS (1-5)"),
    GateSpec("min_asr_ratio", "asr_ratio", "ASR", "asr", True, 0.0, 1.0, _percent,
             "lowest answer-seizure ratio, 0-1 (the API's percent / 100)"),
    GateSpec("min_ner_ratio", "ner_ratio", "NER", "ner", True, 0.0, 1.0, _percent,
             "lowest network effectiveness ratio, 0-1 (the API's percent / 100)"),
    GateSpec("max_jitter_seconds", "jitter_seconds", "jitter", "avgJitterMs", False, 0.0, 60.0, _ms,
             "highest average jitter in seconds (0.03 = 30 ms)"),
    GateSpec("max_rtt_seconds", "rtt_seconds", "RTT", "avgRttMs", False, 0.0, 60.0, _ms,
             "highest average round-trip time in seconds (0.15 = 150 ms)"),
    GateSpec("max_packet_loss_ratio", "packet_loss_ratio", "packet loss", "avgPacketLossFraction", False, 0.0, 1.0,
             _percent, "highest average packet loss, 0-1 (0.01 = 1 %%), read in CALLMETER_PACKET_LOSS_UNIT"),
    GateSpec("max_registration_failures", "registration_failures", "registration failures",
             "registrationFailedCount", False, 0.0, 1e9, lambda v: f"{v:.0f}",
             "most endpoints that failed to register"),
)


@dataclass(frozen=True, slots=True)
class GateResult:
    title: str
    option: str
    limit: float | str
    shown_limit: str
    """The limit as shown, with its comparison: ">= 3.5", "<= 30 ms", ">= DEGRADED"."""
    value: float | str | None
    shown: str
    """The value as shown ("4.21", "8.3 ms", "null")."""
    outcome: Outcome
    message: str

    @property
    def failed(self) -> bool:
        return self.outcome in ("fail", "missing")


def run_values(run: TestRun, packet_loss_unit: PacketLossUnit) -> dict[str, float | None]:
    """Every judgeable value of the run in base units, the exporter's conversions included."""
    summary = run.summary
    if summary is None:
        return {spec.value: None for spec in GATES}
    values = quality_values(summary, packet_loss_unit)
    failures = summary.registration_failed_count
    values["registration_failures"] = None if failures is None else float(failures)
    return values


def judge_value(spec: GateSpec, limit: float, value: float | None, *, allow_missing: bool) -> GateResult:
    shown_limit = f"{spec.sign} {spec.show(limit)}"
    if value is None:
        if allow_missing:
            return GateResult(spec.title, spec.option, limit, shown_limit, None, "null", "skipped",
                              f"{spec.title}: the run summary has no {spec.api_field} (null); skipped "
                              "(--allow-missing)")
        return GateResult(spec.title, spec.option, limit, shown_limit, None, "null", "missing",
                          f"{spec.title}: the run summary has no {spec.api_field} (null), so {spec.flag} cannot "
                          "pass; add --allow-missing to accept a missing value")
    ok = value >= limit if spec.minimum else value <= limit
    if ok:
        return GateResult(spec.title, spec.option, limit, shown_limit, value, spec.show(value), "pass",
                          f"{spec.title} {spec.show(value)} {spec.sign} {spec.show(limit)}")
    side = "below the minimum" if spec.minimum else "above the maximum"
    return GateResult(spec.title, spec.option, limit, shown_limit, value, spec.show(value), "fail",
                      f"{spec.title} {spec.show(value)} is {side} {spec.show(limit)}")


def judge_run(run: TestRun, limits: Mapping[str, float], *, packet_loss_unit: PacketLossUnit,
              allow_missing: bool) -> tuple[dict[str, float | None], list[GateResult]]:
    """The run's values and one result per gate in `limits` (option name -> limit), in table order."""
    values = run_values(run, packet_loss_unit)
    results = [judge_value(spec, limits[spec.option], values[spec.value], allow_missing=allow_missing)
               for spec in GATES if spec.option in limits]
    return values, results


def judge_probe(status: str | None, minimum: str) -> GateResult:
    limit = f">= {minimum}"
    shown = status or "null"
    if status in PROBE_RANK and PROBE_RANK[status] <= PROBE_RANK[minimum]:
        return GateResult("probe status", "min_probe_status", minimum, limit, status, shown, "pass",
                          f"probe status {status} is no worse than {minimum}")
    return GateResult("probe status", "min_probe_status", minimum, limit, status, shown, "fail",
                      f"probe status {shown} is worse than {minimum}")


def not_judged(limits: Mapping[str, float], why: str) -> tuple[GateResult, ...]:
    """The gates asked for, each marked as not judged (the run failed, time ran out, ...)."""
    return tuple(GateResult(spec.title, spec.option, limit, f"{spec.sign} {spec.show(limit)}", None, "-", "skipped",
                            f"{spec.title}: not judged, {why}")
                 for spec in GATES if (limit := limits.get(spec.option)) is not None)


def probe_exit(status: str | None, minimum: str) -> int:
    """UNKNOWN (or a state the docs do not name) means the execution left nothing to judge."""
    if status not in KNOWN_PROBE_STATUSES or status == "UNKNOWN":
        return RUN_FAILED
    return PASSED if judge_probe(status, minimum).outcome == "pass" else GATE_FAILED


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the gate concluded, for the reports and the push. Holds no secret: ids, names, numbers."""

    kind: Literal["test", "probe"]
    project: str
    target_id: str
    target_name: str
    exit_code: int
    reason: str
    run_id: str | None = None
    status: str | None = None
    gates: tuple[GateResult, ...] = ()
    values: Mapping[str, float | None] = field(default_factory=dict)
    elapsed_seconds: float = 0.0
    run_seconds: float | None = None
    requests: int = 0

    @property
    def passed(self) -> bool:
        return self.exit_code == PASSED

    @property
    def outcome(self) -> str:
        return EXIT_NAMES.get(self.exit_code, "error")


def gate_exit(results: Sequence[GateResult]) -> tuple[int, str]:
    """Exit code and one-line reason once a COMPLETED run has been judged."""
    failed = [r for r in results if r.failed]
    if failed:
        return GATE_FAILED, "; ".join(r.message for r in failed)
    if not results:
        return PASSED, "the run completed (no quality gate was given)"
    skipped = sum(1 for r in results if r.outcome == "skipped")
    return PASSED, "every gate passed" + (f" ({skipped} skipped: null in the summary)" if skipped else "")
