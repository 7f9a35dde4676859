"""The command line's settings, without a process: flags and the environment."""

from __future__ import annotations

from exporter.settings import load
from tests.support.keys import SECRET


def test_flags_win_over_environment() -> None:
    settings = load({"plan": "pro", "projects": "staging"},
                    environ={"CALLMETER_API_KEY": SECRET, "CALLMETER_PLAN": "free", "CALLMETER_PROJECTS": "x"})
    assert settings.plan == "pro" and settings.project_filter == ("staging",)
    assert settings.budget_per_minute == 120 * 0.8
