"""A scrape of /metrics never calls the CallMeter API.

The exporter as the daemon wires it (`Exporter.build`, the listener `serve` starts) against the simulator,
on the real clock and real sockets: once its first complete refresh is served, its floors leave the schedule
nothing to read for an hour. Hundreds of real HTTP scrapes then must leave the simulator's request log as
it was. The control: a signed webhook delivery, which asks for a read of its probe's list, moves the log at
once, so a log that stands still is the exporter not asking, not a log that does not record.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import aiohttp

from exporter.api.keysource import KeySource
from exporter.app.daemon import Exporter
from exporter.app.serve import listeners
from exporter.settings import Floors, Settings
from exporter.simulator import DEMO_KEY, Simulator, SimulatorTransport, WorldConfig
from exporter.webhooks import sign
from tests.support.exposition import PROMETHEUS_2_ACCEPT, TEXT_ONLY_ACCEPT, whole
from tests.support.webhooks import SECRET, delivery

HOUR = 3600.0
# Probes that execute hourly and runs two hours apart: after the first refresh nothing new is due soon.
WORLD = WorldConfig(projects=1, probes_per_project=2, tests_per_project=2, registrars_per_project=1,
                    probe_interval_minutes=60, run_period=2 * HOUR, history_runs=2, endpoints_per_run=5)
SCRAPES = 300
ACCEPTS = [PROMETHEUS_2_ACCEPT, TEXT_ONLY_ACCEPT, "*/*", ""]


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def test_hundreds_of_scrapes_send_no_request_and_a_due_read_does() -> None:
    async def scenario() -> None:
        simulator = Simulator(WORLD)
        simulator.record_requests = True
        settings = Settings(api_key=DEMO_KEY, base_url="http://callmeter.invalid/api/v1", requests_per_minute=6000,
                            webhook_secret=SECRET)
        exporter = Exporter.build(settings, key=KeySource(value=DEMO_KEY),
                                  floors=Floors(probes=HOUR, test_runs=HOUR, inventory=HOUR),
                                  transport=SimulatorTransport(simulator, latency=0.0))
        [(_, listener)] = listeners(exporter, None, None)
        await listener.start("127.0.0.1", 0)
        poller = exporter.poller
        poll = asyncio.create_task(poller.run())
        try:
            await until(poller.readiness.ready.is_set, 30, "the first complete refresh")
            await until(lambda: b"callmeter_probe_status" in whole(exporter.exposition, openmetrics=False), 10,
                        "the first snapshot on /metrics")
            # The schedule is quiet: no read under way, and none due within the next minutes.
            loop = asyncio.get_running_loop()
            await until(lambda: all(not job.running and job.due > loop.time() + 600
                                    for job in poller.scheduler.jobs.values()), 10, "the schedule to be quiet")
            before = len(simulator.requests)
            assert before > 0

            url = f"http://127.0.0.1:{listener.port}"
            async with aiohttp.ClientSession(auto_decompress=True) as http:
                for i in range(SCRAPES):
                    headers = {"Accept": ACCEPTS[i % len(ACCEPTS)], "Accept-Encoding": "gzip" if i % 2 else ""}
                    async with http.get(f"{url}/metrics", headers=headers) as response:
                        assert response.status == 200
                        body = await response.read()
                    assert b"callmeter_probe_status" in body and b"callmeter_exporter_api_requests" in body
                assert simulator.requests[before:] == [], "a scrape reached the CallMeter API"

                # The control: a delivery for a known probe asks for a read of its project's probe list.
                project = next(iter(simulator.world.projects))
                probe = next(p.id for p in simulator.world.probes.values() if p.project_id == project)
                body = json.dumps(delivery(probe, project=project, timestamp=time.time())).encode()
                async with http.post(f"{url}{settings.webhook_path}", data=body,
                                     headers={"X-CallMeter-Signature": sign(body, SECRET)}) as response:
                    assert response.status == 200, await response.text()
                await until(lambda: len(simulator.requests) > before, 10, "the read the delivery asked for")
                [(_, method, path, status)] = simulator.requests[before:]
                assert (method, path, status) == ("GET", f"/api/v1/projects/{project}/probes", 200)
        finally:
            poll.cancel()
            await asyncio.gather(poll, return_exceptions=True)
            await listener.close()
            await exporter.client.aclose()

    asyncio.run(scenario())
