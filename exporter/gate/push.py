"""The optional push of a verdict to a Prometheus Pushgateway, through client_python's `push_to_gateway`.

One group per gate target: job `callmeter_gate` and the grouping key {project, test_id} (a probe:
{project, probe_id}); each push replaces the group's previous result. Metrics carry the display name
(`test` or `probe`), so they join the exporter's series on the dashboards:

    callmeter_gate_passed                 1 when the gate passed (exit 0), else 0
    callmeter_gate_exit_code              the gate's exit code (0-5)
    callmeter_gate_run_duration_seconds   startedAt to completedAt of the judged run
    callmeter_gate_<value>                every value of the run summary, in the exporter's units:
                                          mos, jitter_seconds, rtt_seconds, packet_loss_ratio, asr_ratio,
                                          ner_ratio, registration_failures
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

from .judge import Verdict

JOB = "callmeter_gate"
DOC = "the last callmeter-exporter gate for this target (pushed when the gate ended)."


def registry_for(v: Verdict) -> CollectorRegistry:
    """A dedicated registry holding the verdict's metrics (never the global default registry)."""
    registry = CollectorRegistry(auto_describe=True)
    label = "test" if v.kind == "test" else "probe"

    def gauge(name: str, doc: str, value: float) -> None:
        Gauge(f"callmeter_gate_{name}", f"{doc} Of {DOC}", [label], registry=registry).labels(
            v.target_name).set(value)

    gauge("passed", "1 when every gate passed (exit 0), else 0.", 1.0 if v.passed else 0.0)
    gauge("exit_code", "Exit code (0 passed, 1 gate failed, 3 run failed, 4 timed out, 5 API error).",
          float(v.exit_code))
    if v.run_seconds is not None:
        gauge("run_duration_seconds", "Time from startedAt to completedAt of the judged run.", v.run_seconds)
    for name, value in v.values.items():
        if value is not None:
            gauge(name, f"Run summary value {name}, in base units as the exporter publishes it.", value)
    return registry


def grouping_key(v: Verdict) -> dict[str, str]:
    return {"project": v.project, ("test_id" if v.kind == "test" else "probe_id"): v.target_id}


def push(url: str, v: Verdict, *, timeout: float = 10.0) -> None:
    """Replace this target's group on the Pushgateway at `url`; raises on failure (the caller warns)."""
    push_to_gateway(url, job=JOB, registry=registry_for(v), grouping_key=grouping_key(v), timeout=timeout)
