"""The gate on a small budget (issue 22): a Free key's exact share, names found in the fewest requests,
the run read when it should have ended and once more before a timeout, and an API that cannot be
reached. The real gate flow and client against the simulator, on a virtual clock: a Free key's
minutes pass in milliseconds, and the simulator's request log says which requests went out, and when.
"""

from __future__ import annotations

import os
import re

import pytest

from exporter.api.keysource import KeySource
from exporter.app.daemon import Exporter
from exporter.gate.flow import gate_limiter
from exporter.gate.options import parse
from exporter.settings import load
from exporter.simulator import DEMO_KEY, Simulator
from tests.support.gate import Unreachable, first_ids
from tests.support.vclock import run_virtual

FREE_KEY_LIMIT = 10
"""A Free key's requests a minute, as the simulator enforces them."""
QUEUED = 4.0
"""A triggered run is PENDING and QUEUED this long in the simulator, then RUNNING for its test's duration."""


@pytest.fixture(autouse=True)
def _no_callmeter_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("CALLMETER_") or n == "GITHUB_STEP_SUMMARY"]:
        monkeypatch.delenv(name)


def route(path: str) -> str:
    """A simulator log path as its route template: ids become {id}."""
    path = path.removeprefix("/api/v1")
    return re.sub(r"/(projects|tests|test-runs|probes)/[^/]+", r"/\1/{id}", path)


def planned(duration: float, outcome: str = "COMPLETED"):
    def configure(sim: Simulator) -> None:
        sim.plan_test_runs(first_ids(sim)[1], outcome=outcome, duration=duration)
    return configure


def by_names(*extra: str):
    """--project by slug, --test by name: what a person types."""
    def build(sim: Simulator) -> list[str]:
        project, test, _ = first_ids(sim)
        return ["--project", sim.world.projects[project].slug, "--test", sim.world.tests[test].name, *extra]
    return build


# -- the budget ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("plan", "budget"), [("free", 2), ("basic", 12), ("pro", 24)])
def test_the_gates_budget_is_the_exact_rest_of_the_keys_limit(plan: str, budget: int) -> None:
    # 10 x (1 - 0.8) is 1.9999999999999996 in floating point: int() of it made a Free budget 1.
    options = parse(["--project", "p", "--test", "t", "--plan", plan, "--api-key", DEMO_KEY])
    assert options.budget_per_minute == budget
    assert gate_limiter(options.budget_per_minute, lambda: 0.0).window_cap == budget


@pytest.mark.parametrize("share", ["0.29", "0.5", "0.7", "0.75", "0.8", "0.9"])
@pytest.mark.parametrize("limit", [10, 60, 100, 120])
def test_the_exporter_and_the_gate_share_the_keys_limit_exactly(share: str, limit: int) -> None:
    overrides = {"requests_per_minute": limit, "budget_share": share, "api_key": DEMO_KEY}
    options = parse(["--project", "p", "--test", "t", "--requests-per-minute", str(limit), "--budget-share", share,
                     "--api-key", DEMO_KEY])

    async def exporters_window() -> int:
        exporter = Exporter.build(load(overrides), key=KeySource(value=DEMO_KEY), transport=Unreachable())
        await exporter.client.aclose()
        return exporter.limiter.window_cap

    exporter_cap = run_virtual(exporters_window())
    gate_cap = gate_limiter(options.budget_per_minute, lambda: 0.0).window_cap
    assert exporter_cap + gate_cap == limit  # nothing lost to rounding, and no window over the key's limit
