"""Which probe-list reads to keep when the budget cannot pay for one per execution.

Each project's read moments over one period (from `timing.ProbeTimes.moments`) form a chain; dropping
a read hands its executions to the project's next read, which shows them later. `choose_reads` drops,
one at a time, the read whose executions would wait least per request saved, until what is left fits
the budget, never leaving a project unread for longer than the safety net allows. Pure arithmetic.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Choice:
    reads: dict[str, list[float]]
    """Project -> the read moments kept, in order."""
    wanted: int
    """Read moments the executions wanted (before any was dropped)."""
    kept: int
    delay: float
    """Mean seconds an execution's result waits past its own read moment for the read that shows it."""


@dataclass(eq=False)
class _Read:
    at: float
    weight: float
    prev: _Read | None = None
    next: _Read | None = None
    version: int = 0
    alive: bool = True


class _Chain:
    """One project's reads, in order; the reads of the next period follow the last (schedules repeat)."""

    def __init__(self, reads: Sequence[tuple[float, float]], *, cost: float, last_read: float | None,
                 period: float) -> None:
        self.cost, self.period = max(cost, 1e-9), period
        self.last_read = last_read
        self.nodes = [_Read(at, weight) for at, weight in reads]
        for a, b in zip(self.nodes, self.nodes[1:], strict=False):
            a.next, b.prev = b, a
        self.head: _Read | None = self.nodes[0] if self.nodes else None
        self.tail: _Read | None = self.nodes[-1] if self.nodes else None

    def following(self, read: _Read) -> tuple[float, _Read | None]:
        if read.next is not None:
            return read.next.at, read.next
        head = self.head if self.head is not read else None
        return (head.at + self.period, head) if head is not None else (read.at + self.period, None)

    def price(self, read: _Read, max_gap: float) -> float:
        """The wait its executions would add, per request saved, if this read were dropped; infinite if
        that left the project unread for longer than `max_gap` (after its last read, or in the next
        period, after the period's last read)."""
        following, _ = self.following(read)
        befores = [read.prev.at] if read.prev is not None else [self.last_read]
        if read.prev is None and self.tail is not None and self.tail is not read:
            befores.append(self.tail.at - self.period)
        if any(before is None or following - before > max_gap for before in befores):
            return math.inf
        return read.weight * (following - read.at) / self.cost

    def drop(self, read: _Read) -> list[_Read]:
        """Drop a read; its executions go to the next; returns the reads whose price changed."""
        _, heir = self.following(read)
        read.alive = False
        if heir is not None:
            heir.weight += read.weight
        if read.prev is not None:
            read.prev.next = read.next
        if read.next is not None:
            read.next.prev = read.prev
        if self.head is read:
            self.head = read.next
        if self.tail is read:
            self.tail = read.prev
        return [r for r in (read.prev, read.next, self.head, self.tail) if r is not None]

    def kept(self) -> list[float]:
        return [n.at for n in self.nodes if n.alive]


def choose_reads(moments: Mapping[str, Sequence[tuple[float, float]]], cost: Mapping[str, float], budget: float,
                 *, last_read: Mapping[str, float], period: float, max_gap: float) -> Choice:
    """Of every project's read moments (when, executions shown) over one `period`, keep the reads that
    minimise the executions' total wait within `budget` requests (a read costs `cost[project]`):
    drop, one at a time, the read whose executions would wait least, per request saved, for the
    project's next read, but never leave a project unread for more than `max_gap` (from
    `last_read[project]`, then from each kept read)."""
    chains = {p: _Chain(reads, cost=cost.get(p, 1.0), last_read=last_read.get(p), period=period)
              for p, reads in moments.items() if reads}
    heap: list[tuple[float, int, str, int, _Read]] = []
    serial = 0

    def push(project: str, read: _Read) -> None:
        nonlocal serial
        read.version += 1
        serial += 1
        heapq.heappush(heap, (chains[project].price(read, max_gap), serial, project, read.version, read))

    spent = sum(chain.cost * len(chain.nodes) for chain in chains.values())
    executions = sum(n.weight for chain in chains.values() for n in chain.nodes)
    for project, chain in chains.items():
        for node in chain.nodes:
            push(project, node)
    waited = 0.0
    while spent > budget and heap:
        loss, _, project, version, read = heapq.heappop(heap)
        if not read.alive or version != read.version:
            continue
        if math.isinf(loss):
            break
        chain = chains[project]
        spent -= chain.cost
        waited += loss * chain.cost
        for changed in chain.drop(read):
            push(project, changed)
    reads = {p: chain.kept() for p, chain in chains.items()}
    return Choice(reads, sum(len(c.nodes) for c in chains.values()), sum(len(r) for r in reads.values()),
                  waited / executions if executions else 0.0)
