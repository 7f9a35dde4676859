"""A webhook secret, a stand-in for the poller and a delivery payload, for the receiver's tests with and
without the HTTP server."""

from __future__ import annotations

from typing import Any

SECRET = "whsec_" + "k3" * 20


class Sink:
    """Stands in for the poller: knows some probes, records what it was told."""

    def __init__(self, known: dict[str, set[str]] | None = None) -> None:
        self.known = known if known is not None else {"proj_1": {"probe_a", "probe_b"}}
        self.pushed: list[tuple[str, str, str | None, float]] = []

    def push_probe_status(self, project_id: str, probe_id: str, status: str | None, received_at: float) -> str:
        if project_id not in self.known:
            return "unknown_project"
        if probe_id not in self.known[project_id]:
            return "unknown_probe"
        self.pushed.append((project_id, probe_id, status, received_at))
        return "applied"


def delivery(probe: str = "probe_a", *, new: str | None = "UNHEALTHY", previous: str | None = "HEALTHY",
             project: str = "proj_1", **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"event": "probe.status_changed", "probe_id": probe, "probe_name": "SBC check",
                               "project_id": project, "project_name": "Production", "previous_status": previous}
    if new is not None:
        payload["new_status"] = new
    payload.update(extra)
    return payload
