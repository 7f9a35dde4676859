"""The API's routes, served from the world: which resource a path names, and the shape it is sent in.

    GET  /projects, /projects/{id}
    GET  /projects/{id}/probes[/{probeId}], /tests[/{testId}], /registrars
    GET  /projects/{id}/test-runs[/{runId}[/endpoints]]
    POST /projects/{id}/tests/{testId}/run, /projects/{id}/probes/{probeId}/run   (simulator.writes)

Lists are paged (`envelope`); every probe, test, run and endpoint item goes through the item-level
faults (`faults.bend`). Authentication, the rate limit and the request-level faults come before
(`app`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import details, writes
from .entities import SimProject, SimTest
from .envelope import NOT_FOUND, ApiFault, Response, envelope, one, page_of, paging
from .faults import Faults, bend
from .world import World

Handler = Callable[[str, str | None, list[str], dict[str, str]], Response]


class Routes:
    """One request's view of the API: the world, the faults in force, and the moment it is served at."""

    def __init__(self, world: World, faults: Faults, now: float) -> None:
        self.world, self.faults, self.now = world, faults, now

    def serve(self, method: str, path: str, query: dict[str, str]) -> Response:
        """The answer to `method path` (the path below /api/v1); ApiFault when it is an error."""
        parts = [p for p in path.split("/") if p]
        if method == "POST":
            return self._post(parts)
        if method != "GET":
            raise ApiFault(405, "METHOD_NOT_ALLOWED", "Only GET and POST are supported")
        if parts == ["projects"]:
            return page_of([view_of_project(self.world, p) for p in self.world.projects.values()], query)
        project = self._project(parts)
        rest = parts[2:]
        if not rest:
            return one(view_of_project(self.world, project))
        kind, ident, tail = rest[0], (rest[1] if len(rest) > 1 else None), rest[2:]
        handlers: dict[str, Handler] = {"probes": self._probes, "tests": self._tests,
                                        "test-runs": self._test_runs, "registrars": self._registrars}
        handler = handlers.get(kind)
        if handler is None:
            raise ApiFault(404, "NOT_FOUND", NOT_FOUND)
        return handler(project.id, ident, tail, query)

    def _project(self, parts: list[str]) -> SimProject:
        """The project a `/projects/{id}/...` path names: 404 when there is none, 403 when it is forbidden."""
        if len(parts) < 2 or parts[0] != "projects":
            raise ApiFault(404, "NOT_FOUND", NOT_FOUND)
        project = self.world.projects.get(parts[1])
        if project is None:
            raise ApiFault(404, "NOT_FOUND", NOT_FOUND)
        if project.id in self.faults.forbidden_projects or project.slug in self.faults.forbidden_projects:
            raise ApiFault(403, "FORBIDDEN", "Insufficient permissions for this operation")
        return project

    def _item(self, item: dict[str, Any]) -> dict[str, Any]:
        return bend(item, self.faults)

    # -- one kind of resource each -------------------------------------------------------------

    def _probes(self, pid: str, ident: str | None, tail: list[str], query: dict[str, str]) -> Response:
        w, now = self.world, self.now
        if ident is None:
            return page_of([self._item(w.probe_view(p, now)) for p in w.probes.values() if p.project_id == pid],
                           query)
        probe = w.probes.get(ident)
        if probe is None or probe.project_id != pid or tail:
            raise ApiFault(404, "NOT_FOUND", "Probe not found")
        return one(self._item(details.probe_detail(w, probe, w.probe_view(probe, now))))

    def _tests(self, pid: str, ident: str | None, tail: list[str], query: dict[str, str]) -> Response:
        w = self.world
        if ident is None:
            return page_of([self._item(view_of_test(w, t)) for t in w.tests.values() if t.project_id == pid], query)
        test = w.tests.get(ident)
        if test is None or test.project_id != pid or tail:
            raise ApiFault(404, "NOT_FOUND", "Test not found")
        return one(self._item(details.detail_of_test(w, test, view_of_test(w, test))))

    def _test_runs(self, pid: str, ident: str | None, tail: list[str], query: dict[str, str]) -> Response:
        w = self.world
        if ident is None:
            return self._run_list(pid, query)
        run = w.find_run(pid, ident, self.now)
        if run is None or tail not in ([], ["endpoints"]):
            raise ApiFault(404, "NOT_FOUND", "Test run not found")
        if tail == ["endpoints"]:
            return page_of([self._item(e) for e in details.run_endpoints(w, w.tests[run["testId"]], run)], query)
        return one(self._item(run))

    def _run_list(self, pid: str, query: dict[str, str]) -> Response:
        """The project's runs, newest first unless the faults say otherwise; views only for the page served."""
        rows = self.world.runs_of_project(pid, self.now)
        if self.faults.run_order == "desc":
            rows.reverse()
        page, per_page = paging(query)
        chunk = rows[(page - 1) * per_page: page * per_page]
        views = [self._item(self.world.run_view(test, run_id, created, self.now, detail=False))
                 for created, run_id, test in chunk]
        return envelope(views, page, per_page, len(rows))

    def _registrars(self, pid: str, ident: str | None, tail: list[str], query: dict[str, str]) -> Response:
        if ident is not None:
            raise ApiFault(404, "NOT_FOUND", NOT_FOUND)
        return page_of([self._item({"id": r.id, "name": r.name, "uri": r.uri, "transport": r.transport})
                        for r in self.world.registrars.values() if r.project_id == pid], query)

    def _post(self, parts: list[str]) -> Response:
        """The two writes, Run Test and Run Probe (simulator.writes)."""
        data = writes.post(self.world, parts, self.now, forbidden=self.faults.forbidden_projects)
        return one(data, status=201)


def view_of_project(world: World, p: SimProject) -> dict[str, Any]:
    return {"id": p.id, "slug": p.slug, "name": p.name, "description": f"{p.name} SIP infrastructure testing",
            "testCount": sum(1 for t in world.tests.values() if t.project_id == p.id),
            "probeCount": sum(1 for x in world.probes.values() if x.project_id == p.id),
            "registrarCount": sum(1 for r in world.registrars.values() if r.project_id == p.id)}


def view_of_test(world: World, t: SimTest) -> dict[str, Any]:
    return {"id": t.id, "name": t.name, "durationSeconds": world.test_duration(t),
            "totalEndpoints": t.endpoints, "createdAt": world.stamp(world.start - 86400)}
