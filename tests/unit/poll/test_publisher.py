"""The publish loop on a virtual clock: a new snapshot after a change, and again when served data expires."""

from __future__ import annotations

import asyncio

from exporter.api.models import Project
from exporter.model.snapshot import ProjectData, Snapshot
from exporter.poll.publisher import Publisher
from tests.support.vclock import run_virtual

MAX_AGE = 2.0


def test_data_that_expires_during_the_pause_after_a_publish_is_dropped_at_once() -> None:
    """Read at t=0 with a 2 s max age; a change published at t=1.5 starts the 1 s pause, through which
    the data expires (t=2). The next snapshot must come at the end of that pause, not at the next change
    (there is none here): stale data is never served as current for longer than the pause."""
    async def scenario() -> list[Snapshot]:
        loop = asyncio.get_running_loop()
        project = ProjectData(Project.model_construct(id="p", slug="p", name="P"), fetched={"probes": 0.0})
        published: list[Snapshot] = []

        def build() -> Snapshot:
            return Snapshot(projects=(project,), taken_at=loop.time(), max_data_age={"probes": MAX_AGE})

        publisher = Publisher(build=build, publish=published.append, interval=1.0, wall=loop.time)
        task = asyncio.create_task(publisher.run())
        publisher.changed()  # the first read
        await asyncio.sleep(1.5)
        publisher.changed()
        await asyncio.sleep(10.0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return published

    published = run_virtual(scenario())
    moments = [round(s.taken_at, 2) for s in published]
    assert moments[0] == 0.0 and 1.5 in moments  # the first publish, then the change
    after = [s for s in published if s.taken_at > 1.5]
    assert after, f"no snapshot after the data expired: {moments}"
    first = after[0]
    assert MAX_AGE <= first.taken_at <= 2.6  # at the end of the pause, not later
    assert not first.fresh(first.projects[0].fetched["probes"], "probes", first.taken_at)
