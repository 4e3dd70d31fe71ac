"""What the command program needs to know about a scratchpad allocation, and address dependencies.

:class:`Residency` turns an :class:`~mapper.allocate.Allocation` of a
:class:`~mapper.lifetimes.MemoryProblem` into per-step questions the layer decisions
(:mod:`mapper.decide`) and the emission (:mod:`mapper.emit`) ask of a layer: is this tensor (or a
view of it) on chip now, and where; does its on-chip copy start here (produced, or reloaded from
DRAM), and must it be written back to DRAM after this step.

:class:`AddressBook` tracks which commands last touched which scratchpad byte ranges, so a command
that writes a range waits for every earlier command that read or wrote any part of it (the layers'
tile buffers move from layer to layer, and residents come and go).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mapper.allocate import Allocation
from mapper.lifetimes import MemoryProblem

__all__ = ["Residency", "AddressBook"]


@dataclass(frozen=True)
class Residency:
    """An allocation in the terms of the schedule ``problem.steps`` (layer names in order)."""

    problem: MemoryProblem
    allocation: Allocation

    def __post_init__(self) -> None:
        root = {}
        for t in self.problem.tensors:
            root[t.name] = t.name
            for alias in t.aliases:
                root[alias] = t.name
        starting: dict[int, list[str]] = {}
        reloads: dict[int, list[str]] = {}
        written_back: dict[int, list[str]] = {}
        on_chip: dict[int, list[str]] = {}
        for name, ta in self.allocation.tensors.items():
            for first, last, _ in ta.intervals:
                starting.setdefault(first, []).append(name)
                if first in ta.read_steps:
                    reloads.setdefault(first, []).append(name)
                for step in range(first, last + 1):
                    on_chip.setdefault(step, []).append(name)
                    if step in ta.write_steps:
                        written_back.setdefault(step, []).append(name)
        object.__setattr__(self, "_root", root)
        object.__setattr__(self, "_steps", (starting, reloads, written_back, on_chip))

    def root(self, tensor: str) -> str:
        """The buffer ``tensor`` lives in (views share their root's)."""
        return self._root.get(tensor, tensor)  # type: ignore[attr-defined]

    def place(self, tensor: str, step: int) -> tuple[int, int] | None:
        """``(offset, size_bytes)`` of ``tensor``'s buffer at ``step`` if it is on chip then."""
        ta = self.allocation.tensors.get(self.root(tensor))
        if ta is None:
            return None
        offset = ta.offset_at(step)
        return None if offset is None else (offset, ta.size_bytes)

    def starting(self, step: int) -> list[str]:
        """Buffers whose on-chip interval begins at ``step``."""
        return self._steps[0].get(step, [])  # type: ignore[attr-defined]

    def reloads(self, step: int) -> list[str]:
        """Buffers read from DRAM into their on-chip place at ``step`` (an interval starts with a read)."""
        return self._steps[1].get(step, [])  # type: ignore[attr-defined]

    def written_back(self, step: int) -> list[str]:
        """Buffers stored from their on-chip place to DRAM after ``step``."""
        return self._steps[2].get(step, [])  # type: ignore[attr-defined]

    def at(self, step: int) -> list[tuple[str, int, int]]:
        """``(buffer, first byte, end byte)`` of every buffer on chip at ``step``."""
        out = []
        for name in self._steps[3].get(step, []):  # type: ignore[attr-defined]
            offset, size = self.place(name, step)  # type: ignore[misc]
            out.append((name, offset, offset + size))
        return out


class AddressBook:
    """Which commands last used which byte ranges of one memory.

    :meth:`claim` returns the commands a new writer of ``[lo, hi)`` must wait for and forgets the
    ranges it covers (the writer waits for them, so later claimers wait for the writer instead);
    :meth:`touch` records commands that used a range.
    """

    def __init__(self) -> None:
        self._entries: list[tuple[int, int, tuple[int, ...]]] = []

    def copy(self) -> AddressBook:
        """A book with the same entries, changed independently of this one."""
        book = AddressBook()
        book._entries = list(self._entries)
        return book

    def claim(self, lo: int, hi: int) -> list[int]:
        deps: list[int] = []
        kept = []
        for entry in self._entries:
            a, b, users = entry
            if a < hi and lo < b:
                deps.extend(users)
                if lo <= a and b <= hi:
                    continue
            kept.append(entry)
        self._entries = kept
        return sorted(set(deps))

    def touch(self, lo: int, hi: int, users: Iterable[int | None]) -> None:
        ids = tuple(sorted({u for u in users if u is not None}))
        if ids and hi > lo:
            self._entries.append((lo, hi, ids))
