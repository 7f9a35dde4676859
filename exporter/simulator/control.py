"""The simulator's control routes under /_sim/, for tests that run it as a separate process.

    GET  /_sim/state                    the keys, projects, probes (with their status), tests, faults
    POST /_sim/probes/{probeId}         {"status"}: force a probe's listed status (null: back to normal)
    GET|POST /_sim/webhooks             the webhook sender's settings (POST: change them) and deliveries
    POST /_sim/faults                   {field: value}: turn fault switches (`faults.Faults`)
    POST /_sim/reset-faults             all of them off
    POST /_sim/delete                   {"kind", "id"}: delete a project, probe, test or registrar
    POST /_sim/tests/{testId}, /_sim/probe-executions/{probeId}   plans for the two writes (`writes`)
    POST /_sim/keys                     {"revoke"} / {"restore"}: an API key

A POST answers with the state after it; a body that is not JSON, or names nothing, gets a 400.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from . import writes
from .envelope import Response, error, json_response
from .faults import Faults
from .webhooks import WebhookSender
from .world import World


class Controlled(Protocol):
    """What the control routes change of the simulator (`simulator.app.Simulator`)."""

    faults: Faults

    @property
    def world(self) -> World: ...
    @property
    def webhooks(self) -> WebhookSender: ...
    @property
    def revoked(self) -> set[str]: ...
    def state(self) -> dict[str, Any]: ...
    def set_probe_status(self, probe_id: str, status: str | None) -> None: ...
    def set_faults(self, **changes: Any) -> Faults: ...
    def delete(self, kind: str, ident: str) -> None: ...


def control(sim: Controlled, method: str, path: str, body: bytes) -> Response:
    """The answer to a control request (`path` starts with /_sim/)."""
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        return error(400, "BAD_REQUEST", "body must be JSON")
    parts = [p for p in path.split("/") if p][1:]
    try:
        if method == "GET" and parts == ["state"]:
            return json_response(200, sim.state())
        if parts == ["webhooks"]:
            if method == "POST":
                sim.webhooks.configure(**payload)
            return json_response(200, sim.webhooks.describe())
        if method != "POST" or not _change(sim, parts, payload):
            return error(404, "NOT_FOUND", "No such control route")
    except (KeyError, TypeError) as exc:
        return error(400, "BAD_REQUEST", f"bad control request: {exc}")
    return json_response(200, sim.state())


def _change(sim: Controlled, parts: list[str], payload: dict[str, Any]) -> bool:
    """Carry out a POST control request; False when no route has these parts."""
    if len(parts) == 2 and parts[0] == "probes":
        sim.set_probe_status(parts[1], payload.get("status"))
        sim.webhooks.poke()
    elif parts == ["faults"]:
        sim.set_faults(**payload)
    elif parts == ["reset-faults"]:
        sim.faults = Faults()
    elif parts == ["delete"]:
        sim.delete(payload["kind"], payload["id"])
    elif parts == ["keys"]:
        if "revoke" in payload:
            sim.revoked.add(payload["revoke"])
        if "restore" in payload:
            sim.revoked.discard(payload["restore"])
    else:
        return writes.control(sim.world, "POST", parts, payload)
    return True
