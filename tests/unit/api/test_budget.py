from __future__ import annotations

import itertools
import random

import pytest

from exporter.api.budget import RateLimiter
from tests.support.budget import max_in_window


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def drive(limiter: RateLimiter, clock: FakeClock, seconds: float, rng: random.Random,
          on_send: object = None) -> list[float]:
    """Ask for slots as fast as a greedy caller would, for `seconds` of simulated time."""
    sent: list[float] = []
    end = clock.now + seconds
    while clock.now < end:
        slot = limiter.reserve()
        clock.now = max(clock.now, slot) + rng.uniform(0, 0.05)
        sent.append(slot)
        if callable(on_send):
            on_send(len(sent))
    return sent


def test_no_window_ever_holds_more_than_the_cap_over_a_simulated_day() -> None:
    clock, rng = FakeClock(), random.Random(1)
    limiter = RateLimiter(per_minute=10, window_cap=10, clock=clock)

    def chaos(count: int) -> None:
        if count % 97 == 0:
            limiter.pause(rng.uniform(0, 30))
            limiter.on_rate_limited()
        else:
            limiter.on_success()

    sent = drive(limiter, clock, 24 * 3600, rng, chaos)
    assert len(sent) > 1000
    assert max_in_window(sent) <= 10


@pytest.mark.parametrize(("per_minute", "cap"), [(60, 8), (600, 10), (9, 8)])
def test_the_window_cap_alone_holds_a_rate_faster_than_the_cap(per_minute: float, cap: int) -> None:
    """Spacing at a rate above the cap would put `per_minute` requests in a minute: only the 60 s window keeps
    it to `cap`. (With the rate equal to the cap, even spacing alone keeps every window legal, and a cap one
    too high goes unnoticed.) The gate's limiter is built this way: a second apart, the cap doing the rest."""
    clock = FakeClock()
    limiter = RateLimiter(per_minute=per_minute, window_cap=cap, clock=clock)
    sent = drive(limiter, clock, 10 * 60, random.Random(2))
    assert max_in_window(sent) == cap  # reached, never passed
    first = sent[0]
    assert len([t for t in sent if t < first + 60]) == cap
    # The request after a full window leaves the moment the window's first request is a minute old.
    assert sent[cap] == pytest.approx(first + 60, abs=0.1)


def test_the_window_cap_holds_through_pauses_and_rate_changes_when_the_rate_is_above_it() -> None:
    clock, rng = FakeClock(), random.Random(3)
    limiter = RateLimiter(per_minute=120, window_cap=8, clock=clock)

    def chaos(count: int) -> None:
        if count % 13 == 0:
            limiter.pause(rng.uniform(0, 20))
            limiter.on_rate_limited()
        else:
            limiter.on_success()

    sent = drive(limiter, clock, 6 * 3600, rng, chaos)
    assert len(sent) > 6 * 60 * 4
    assert max_in_window(sent) == 8


def test_next_free_waits_for_the_window_like_reserve() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=600, window_cap=3, clock=clock)
    slots = [limiter.reserve() for _ in range(3)]
    assert limiter.next_free() == pytest.approx(slots[0] + 60)
    assert limiter.reserve() == pytest.approx(slots[0] + 60)


def test_requests_are_spread_evenly_not_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=8, window_cap=8, clock=clock)
    slots = [limiter.reserve() for _ in range(5)]
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert gaps == [7.5] * 4
    # Half an interval before the very first request, so a restart cannot stack a burst.
    assert slots[0] - clock.now == 3.75


def test_three_starts_in_one_minute_stay_within_a_free_plan_key() -> None:
    """Restart the exporter twice within a minute (three processes, no shared state)."""
    clock, sent = FakeClock(), []
    start = clock.now
    for life in (19.9, 20.1, 20.0):
        limiter = RateLimiter(per_minute=8, window_cap=8, clock=clock)  # 10/min key, budget share 0.8
        end = clock.now + life
        while True:
            slot = limiter.reserve()
            if slot >= end:
                break
            sent.append(slot)
            clock.now = slot
        clock.now = end
    assert all(start <= t < start + 60 for t in sent)
    assert max_in_window(sent) <= 10


def test_pause_holds_every_slot_until_retry_after() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=600, window_cap=600, clock=clock)
    limiter.pause(30)
    assert limiter.reserve() >= clock.now + 30
    assert limiter.blocked_for() == 30


def test_aimd_halves_on_429_and_recovers_a_twentieth_per_quiet_minute() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=60, window_cap=60, clock=clock)
    limiter.on_rate_limited()
    assert limiter.per_minute == 30
    limiter.on_rate_limited()
    assert limiter.per_minute == 15
    clock.now += 59
    limiter.on_success()
    assert limiter.per_minute == 15
    clock.now += 1
    limiter.on_success()
    assert limiter.per_minute == 18
    for _ in range(30):
        clock.now += 60
        limiter.on_success()
    assert limiter.per_minute == 60


def test_rate_never_falls_below_its_floor() -> None:
    limiter = RateLimiter(per_minute=8, window_cap=8, clock=FakeClock())
    for _ in range(20):
        limiter.on_rate_limited()
    assert limiter.per_minute == 1.0


def test_next_free_peeks_without_booking() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=60, window_cap=60, clock=clock)
    peek = limiter.next_free()
    assert limiter.next_free() == peek
    assert limiter.reserve() == peek
    assert limiter.next_free() == peek + 1.0


# -- the edges of each method (mutation testing found these untested) -------------------------------


@pytest.mark.parametrize(("per_minute", "cap"), [(0, 5), (-1, 5), (5, 0), (0, 0)])
def test_a_rate_or_cap_that_is_not_positive_is_refused(per_minute: float, cap: int) -> None:
    with pytest.raises(ValueError, match=r"^per_minute and window_cap must be positive$"):
        RateLimiter(per_minute=per_minute, window_cap=cap, clock=FakeClock())


def test_a_rate_below_one_a_minute_is_a_rate() -> None:
    limiter = RateLimiter(per_minute=0.5, window_cap=1, clock=FakeClock())
    assert limiter.interval == 120


def test_an_idle_limiter_offers_now_and_books_it() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=60, window_cap=60, clock=clock)
    limiter.reserve()
    clock.now += 3600
    assert limiter.next_free() == clock.now
    assert limiter.reserve() == clock.now


def test_next_free_counts_the_window_exactly_at_the_cap() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=6000, window_cap=2, clock=clock)
    first = limiter.reserve()
    clock.now = limiter.reserve()
    assert limiter.next_free() == pytest.approx(first + 60)  # two in the window: the cap
    assert limiter.sent_in_window() == 2
    clock.now = first + 60  # the first has just left the window: a request 60 s later is in the next one
    assert limiter.sent_in_window() == 1 and limiter.recent() == [first + 0.01]


def test_releasing_a_slot_that_was_never_booked_is_harmless() -> None:
    limiter = RateLimiter(per_minute=60, window_cap=60, clock=FakeClock())
    slot = limiter.reserve()
    limiter.release(12345.0)
    limiter.release(slot)
    assert limiter.sent_in_window() == 0


def test_a_pause_shorter_than_a_second_is_kept_as_given() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=6000, window_cap=6000, clock=clock)
    limiter.pause(0.25)
    assert limiter.blocked_for() == 0.25
    assert limiter.reserve() == clock.now + 0.25
    limiter.pause(-5)  # a negative Retry-After pauses nothing
    assert limiter.blocked_for() == 0.25


def test_several_quiet_minutes_at_once_give_back_a_twentieth_each() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=60, window_cap=60, clock=clock)
    limiter.on_rate_limited()
    clock.now += 3 * 60 + 30
    limiter.on_success()
    assert limiter.per_minute == 30 + 3 * 3


def test_a_restore_continues_the_previous_processes_minute() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=8, window_cap=8, clock=clock)
    now = clock.now
    # Its last minute (and one request 60 s old, which is out of the window), in any order.
    limiter.restore([now - 10, now - 50, now - 60, now - 30, now - 61], per_minute=4, paused_until=0.0)
    assert limiter.recent() == [now - 50, now - 30, now - 10]
    assert limiter.per_minute == 4
    # The next request is spaced from the last of them at the restored rate (15 s), not sent at once.
    assert limiter.next_free() == now - 10 + 15
    # The rate comes back as after a 429: a twentieth of the base for each quiet minute since the start.
    clock.now += 60
    limiter.on_success()
    assert limiter.per_minute == 4 + 8 / 20


def test_a_restore_keeps_the_rate_within_its_bounds_and_the_pause() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=8, window_cap=8, clock=clock)
    limiter.restore([clock.now - 1], per_minute=1000, paused_until=clock.now + 30)
    assert limiter.per_minute == 8
    assert limiter.blocked_for() == 30 and limiter.next_free() == clock.now + 30
    limiter.restore([], per_minute=0.01)
    assert limiter.per_minute == 1.0  # the floor: base / 8


def test_a_restore_without_a_rate_or_pause_keeps_the_limiters_own() -> None:
    clock = FakeClock()
    clock.now = 0.0  # a virtual loop's clock starts at 0
    limiter = RateLimiter(per_minute=60, window_cap=60, clock=clock)
    limiter.on_rate_limited()
    limiter.restore([])
    assert limiter.per_minute == 30
    assert limiter.blocked_for() == 0 and limiter.next_free() == 0.0


def test_a_request_exactly_60_s_old_has_left_the_window_and_one_of_this_moment_is_in_it() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=60, window_cap=60, clock=clock)  # whole and half seconds: exact in binary
    first = limiter.reserve()
    clock.now = first + 60
    assert limiter.recent() == [] and limiter.sent_in_window() == 0
    limiter.restore([clock.now - 60, clock.now])
    assert limiter.recent() == [clock.now] and limiter.sent_in_window() == 1
