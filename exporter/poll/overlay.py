"""Webhook statuses laid over the polled probe lists until a read decides.

The poller keeps one `StatusOverlay`. A verified delivery for a known probe is `push`ed; every
snapshot shows the pushed status instead of the polled one (`apply`) until a probe-list read of that
project that *started after* the delivery comes back (`settle`). That read is the source of truth:
the overlay entry goes, and the read's status is what the next snapshot shows. When the read agrees,
the delay from the delivery to it is observed; when it does not, a disagreement is counted.
A read that started before the delivery arrived decides nothing: it may predate the change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..api.models import Probe
from ..webhooks.metrics import WebhookMetrics


@dataclass(frozen=True, slots=True)
class Pushed:
    status: str | None
    received_at: float
    """Unix time the delivery arrived."""


class StatusOverlay:
    def __init__(self, metrics: WebhookMetrics | None = None) -> None:
        self._metrics = metrics
        self._pushed: dict[str, dict[str, Pushed]] = {}  # project id -> probe id -> newest delivery

    def __bool__(self) -> bool:
        return bool(self._pushed)

    def __contains__(self, project_id: str) -> bool:
        """Does the overlay change anything in this project?"""
        return project_id in self._pushed

    def push(self, project_id: str, probe_id: str, status: str | None, received_at: float) -> None:
        self._pushed.setdefault(project_id, {})[probe_id] = Pushed(status, received_at)

    def pending(self, project_id: str) -> dict[str, Pushed]:
        return dict(self._pushed.get(project_id, {}))

    def statuses(self) -> set[str]:
        """Every status the overlay shows (the state sets list each with 0 for the other probes)."""
        return {p.status for probes in self._pushed.values() for p in probes.values() if p.status}

    def apply(self, project_id: str, probes: tuple[Probe, ...] | None) -> tuple[Probe, ...] | None:
        """The probe list with pushed statuses in place of polled ones; probes never read are not invented."""
        pushed = self._pushed.get(project_id)
        if not pushed or probes is None:
            return probes
        return tuple(probe.model_copy(update={"status": pushed[probe.id].status})
                     if probe.id in pushed and pushed[probe.id].status else probe for probe in probes)

    def settle(self, project_id: str, probes: Iterable[Probe], *, read_started: float, read_done: float) -> None:
        """A probe-list read of the project that started at `read_started` came back at `read_done`: it
        decides every delivery that arrived before it started."""
        pushed = self._pushed.get(project_id)
        if not pushed:
            return
        polled = {probe.id: probe.status for probe in probes}
        for probe_id, entry in list(pushed.items()):
            if entry.received_at > read_started:
                continue  # arrived while the read was under way: the next read decides
            del pushed[probe_id]
            if entry.status is None or probe_id not in polled or self._metrics is None:
                continue  # nothing to compare: no status named, or the probe is gone
            if polled[probe_id] == entry.status:
                self._metrics.confirmed(read_done - entry.received_at)
            else:
                self._metrics.disagreed()
        if not pushed:
            del self._pushed[project_id]

    def forget(self, project_id: str) -> None:
        """The project is gone: its deliveries go with it."""
        self._pushed.pop(project_id, None)
