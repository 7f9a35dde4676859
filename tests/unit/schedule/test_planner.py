"""The plan: pure arithmetic over an inventory, floors and a budget."""

from __future__ import annotations

import pytest

from exporter.schedule.planner import (
    DETAIL_HEADROOM,
    Inventory,
    detail_reserve,
    has_room,
    pages,
    plan_for,
    room_per_minute,
)
from exporter.settings import Floors

FLOORS = Floors()


def inventory(projects: int, probe_pages: int = 1, test_pages: int = 1, registrar_pages: int = 1) -> Inventory:
    return Inventory(projects=projects, requests={"probes": projects * probe_pages, "test_runs": projects,
                                                  "tests": projects * test_pages,
                                                  "registrars": projects * registrar_pages})


def per_minute(inv: Inventory, intervals: dict[str, float]) -> float:
    cost = {**inv.requests, "projects": 1}
    return sum(cost[r] * 60 / intervals[r] for r in cost)


def test_pages_of_a_list() -> None:
    assert [pages(n) for n in (None, 0, 1, 100, 101)] == [1, 1, 1, 1, 2]


def test_a_budget_that_pays_every_floor_keeps_the_floors() -> None:
    plan = plan_for(inventory(1), FLOORS, 8.0)
    assert plan.fits and not plan.stretched
    assert plan.intervals == {"probes": 60.0, "test_runs": 60.0, "projects": 900.0, "tests": 900.0,
                              "registrars": 900.0}


def test_a_tight_budget_stretches_inventory_then_run_lists_then_probes() -> None:
    inv = inventory(10)  # the floors need 10 + 10 + 21/15 requests a minute
    plan = plan_for(inv, FLOORS, 20.5)
    assert plan.stretched and set(plan.stretched) <= {"projects", "tests", "registrars"}
    assert plan.intervals["probes"] == plan.intervals["test_runs"] == 60.0
    assert per_minute(inv, plan.intervals) == pytest.approx(20.5)

    plan = plan_for(inv, FLOORS, 12.0)
    assert plan.intervals["probes"] == 60.0 and 60.0 < plan.intervals["test_runs"] < 600.0
    assert per_minute(inv, plan.intervals) == pytest.approx(12.0)

    plan = plan_for(inv, FLOORS, 8.0)  # run lists at their ceiling (10 floors), probes take the rest
    assert plan.intervals["test_runs"] == 600.0 and plan.intervals["probes"] > 60.0
    assert plan.intervals["tests"] == 6 * 3600
    assert per_minute(inv, plan.intervals) == pytest.approx(8.0)


def test_beyond_every_ceiling_all_intervals_stretch_alike() -> None:
    inv = inventory(50)
    plan = plan_for(inv, FLOORS, 1.0)
    assert plan.intervals["test_runs"] > 600.0 and plan.intervals["probes"] > 3600.0
    assert per_minute(inv, plan.intervals) == pytest.approx(1.0)


def test_details_get_what_they_want_when_the_floors_leave_room() -> None:
    inv = inventory(1)
    assert detail_reserve(inv, FLOORS, 8.0, 2.0) == 2.0 * DETAIL_HEADROOM
    plan = plan_for(inv, FLOORS, 8.0, details_per_minute=2.0)
    assert plan.detail_reserve_per_minute == 2.0 * DETAIL_HEADROOM
    assert plan.intervals["probes"] == plan.intervals["test_runs"] == 60.0


def test_details_never_take_more_than_half_the_budget() -> None:
    assert detail_reserve(inventory(1), FLOORS, 100.0, 90.0) == 50.0


def test_details_are_paid_before_run_lists_beyond_their_ceiling_but_never_before_the_probe_floor() -> None:
    inv = inventory(50)  # probe floor: 50 a minute; run lists at their ceiling: 5; inventory: 101 per 6 h
    spare = 96.0 - 50 - 5 - 101 / 360
    assert detail_reserve(inv, FLOORS, 96.0, 100.0) == pytest.approx(min(spare, 48.0))
    plan = plan_for(inv, FLOORS, 96.0, details_per_minute=30.0)
    assert plan.intervals["probes"] == 60.0
    assert plan.intervals["test_runs"] > plan_for(inv, FLOORS, 96.0).intervals["test_runs"]


@pytest.mark.parametrize("budget", [8.0, 48.0])
def test_below_the_probe_floor_the_plan_ignores_how_many_runs_finish(budget: float) -> None:
    inv = inventory(50)
    assert detail_reserve(inv, FLOORS, budget, 25.0) == 0.0
    plans = [plan_for(inv, FLOORS, budget, details_per_minute=wanted) for wanted in (0.0, 1.0, 10.0, 25.0)]
    assert len({p.intervals["probes"] for p in plans}) == 1


def test_raising_the_probe_floor_frees_budget_for_details() -> None:
    inv = inventory(50)
    assert detail_reserve(inv, Floors(probes=120.0), 48.0, 25.0) == pytest.approx(48.0 - 25 - 5 - 101 / 360)


def test_growth_is_noticed_and_shrinking_is_not() -> None:
    small, big = inventory(1), inventory(2)
    assert big.grew_since(small) and big.grew_since(None)
    assert not small.grew_since(big) and not small.grew_since(small)


def test_the_room_is_what_the_plan_leaves_over_and_none_when_stretched() -> None:
    inv = inventory(2)
    plan = plan_for(inv, FLOORS, 8.0, details_per_minute=0.8)
    used = per_minute(inv, plan.intervals)
    assert room_per_minute(plan, inv) == pytest.approx(8.0 - used - DETAIL_HEADROOM * 0.8)
    assert has_room(plan, inv)
    tight = plan_for(inventory(10), FLOORS, 20.5)
    assert tight.stretched and not has_room(tight, inventory(10))
    assert room_per_minute(tight, inventory(10)) == pytest.approx(0.0, abs=1e-6)
