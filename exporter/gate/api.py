"""The gate's client: the exporter's client plus the API's two writes, and the reads that find a target.

`GateClient` subclasses `CallMeterClient` (budget, 429 handling, typed errors, redaction) and is the
only code that sends anything but a GET. A write is tried again only after a 429, which tells that the
API did nothing; the client hands any other failure of a write back at once, since a 5xx or a lost
answer may already have started a run, and a second one would cost the account a second run.

    in_project(client, project, read)                  the project (id or slug) and what `read` reads in it
    pick(items, value, ...)                            id or exact name -> the item of a list already read
    GateClient.run_test / run_probe                    the writes: 201 -> the new run / execution
    GateClient.read_run / read_probe / read_test       one GET each

Finding a target costs as few reads as can be: a test or probe by id or name is picked from the
project's list (one read, which also gives a test's `durationSeconds`); a project given by id costs
nothing more, by slug the project list (one read). The API reference does not say what an id looks
like: its one project example is a UUID (`c3d4e5f6-a7b8-9012-cdef-123456789012`), its other examples
are short strings (`abc123`, `probe_abc123`), and the webhook examples cuid-like ones (`clx...`). So
only a UUID-shaped `--project` is sent as an id as it is (a slug would be a request known to 404);
anything else is looked up in the project list by id or slug, which is right whatever ids look like.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

from ..api import errors
from ..api.client import CallMeterClient
from ..api.models import Probe, ProbeExecution, Project, Test, TestRun

RUN_TEST = "/projects/{projectId}/tests/{testId}/run"
RUN_PROBE = "/projects/{projectId}/probes/{probeId}/run"
PROJECTS = "/projects"
PROJECT = "/projects/{projectId}"
TESTS = "/projects/{projectId}/tests"
TEST = "/projects/{projectId}/tests/{testId}"
PROBES = "/projects/{projectId}/probes"
PROBE = "/projects/{projectId}/probes/{probeId}"
RUN = "/projects/{projectId}/test-runs/{testRunId}"

N = TypeVar("N", Project, Test, Probe)
T = TypeVar("T")

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
"""The shape of the reference's project id (8-4-4-4-12 hex digits; its example has no UUID version)."""


def _id(value: str) -> str:
    """An id as one path segment (ids are opaque; a name given where an id was expected may hold anything)."""
    return quote(value, safe="")


class NotFoundError(Exception):
    """The project, test, probe or run the options name is not visible to the key: a usage error."""


class GateClient(CallMeterClient):
    async def run_test(self, project_id: str, test_id: str) -> TestRun:
        """Start a run of the test: `POST .../tests/{testId}/run`, 201 with the run (PENDING)."""
        path = f"projects/{_id(project_id)}/tests/{_id(test_id)}/run"
        return TestRun.model_validate(await self._write(RUN_TEST, path, ("id",)))

    async def run_probe(self, project_id: str, probe_id: str) -> ProbeExecution:
        """Execute the probe now: `POST .../probes/{probeId}/run`, 201 with the queued execution."""
        path = f"projects/{_id(project_id)}/probes/{_id(probe_id)}/run"
        return ProbeExecution.model_validate(await self._write(RUN_PROBE, path, ()))

    async def _write(self, route: str, path: str, needed: Sequence[str]) -> dict[str, Any]:
        body = await self._request(route, path, method="POST")
        data = body.get("data")
        if not isinstance(data, dict) or any(data.get(name) in (None, "") for name in needed):
            raise errors.InvalidResponse(f"unexpected response from {route}: data lacks {', '.join(needed)}",
                                         route=route)
        return data

    async def read_project(self, project_id: str) -> Project:
        return await self.get(PROJECT, f"projects/{_id(project_id)}", Project)

    async def read_run(self, project_id: str, run_id: str) -> TestRun:
        return await self.get(RUN, f"projects/{_id(project_id)}/test-runs/{_id(run_id)}", TestRun)

    async def read_probe(self, project_id: str, probe_id: str) -> Probe:
        return await self.get(PROBE, f"projects/{_id(project_id)}/probes/{_id(probe_id)}", Probe)

    async def read_test(self, project_id: str, test_id: str) -> Test:
        return await self.get(TEST, f"projects/{_id(project_id)}/tests/{_id(test_id)}", Test)

    async def list_tests(self, project_id: str) -> list[Test]:
        return await self.list_all(TESTS, f"projects/{_id(project_id)}/tests", Test)

    async def list_probes(self, project_id: str) -> list[Probe]:
        return await self.list_all(PROBES, f"projects/{_id(project_id)}/probes", Probe)


def pick(items: Sequence[N], value: str, what: str, name: str, where: str = "") -> N:
    """The item whose id is `value`, else the one whose `name` field (slug, exact name) is; an ambiguous
    name is refused rather than guessed."""
    by_id = [item for item in items if item.id == value]
    if by_id:
        return by_id[0]
    matches = [item for item in items if getattr(item, name, None) == value]
    if len(matches) == 1:
        return matches[0]
    if matches:
        ids = ", ".join(item.id for item in matches[:5])
        raise NotFoundError(f"{len(matches)} {what}s{where} have the {name} {value!r} ({ids}); give the id")
    raise NotFoundError(f"no {what}{where} has the id or {name} {value!r} (as far as the key can see)")


def may_be_project_id(value: str) -> bool:
    """Whether `value` has the shape of a project id, as far as the API reference shows one."""
    return _UUID.fullmatch(value) is not None


async def in_project(client: GateClient, value: str, read: Callable[[str], Awaitable[T]]) -> tuple[Project, T]:
    """`read(project_id)` in the project `value` names. A UUID is taken as the id, which costs nothing
    extra; anything else is looked up among the projects by id or slug first (one list). A UUID the API
    answers 404 for may still be a slug: it is looked up too, and read again."""
    if not may_be_project_id(value):
        project = await _project(client, value)
        return project, await read(project.id)
    try:
        return Project(id=value), await read(value)
    except errors.NotFound:
        project = await _project(client, value)
        if project.id == value:
            raise  # the project exists: what is missing is the resource `read` asked for
        return project, await read(project.id)


async def _project(client: GateClient, value: str) -> Project:
    return pick(await client.list_all(PROJECTS, "projects", Project), value, "project", "slug")
