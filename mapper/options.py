"""What the mapper is asked to do: the options of :func:`mapper.map_graph`, as one value.

``allocator`` chooses how activations (and reused weights) are kept in the scratchpad between layers
(``none``: every layer reads its inputs from DRAM and writes its outputs back, SCALE-Sim style;
``greedy``, ``firstfit``, ``ilp``: see :mod:`mapper.memory`). ``objective`` is what the per-layer
mapping search minimises (``latency``, ``energy`` or ``edp``, energy-delay product).
``scratchpad_bytes`` overrides the design's scratchpad size for the allocation (``None``: the
design's). ``time_limit_s`` and ``mip_gap`` bound the ILP.
"""

from __future__ import annotations

from dataclasses import dataclass

from accel.errors import MappingError

__all__ = ["ALLOCATORS", "OBJECTIVES", "MapOptions"]

ALLOCATORS = ("none", "greedy", "firstfit", "ilp")
OBJECTIVES = ("latency", "energy", "edp")


@dataclass(frozen=True, kw_only=True)
class MapOptions:
    allocator: str = "none"
    objective: str = "latency"
    scratchpad_bytes: int | None = None
    time_limit_s: float = 10.0
    mip_gap: float = 0.01

    def __post_init__(self) -> None:
        if self.allocator not in ALLOCATORS:
            raise MappingError(f"Allocator must be one of {', '.join(ALLOCATORS)}, not {self.allocator!r}")
        if self.objective not in OBJECTIVES:
            raise MappingError(f"Mapping objective must be one of {', '.join(OBJECTIVES)}, not {self.objective!r}")
        if self.scratchpad_bytes is not None and (not isinstance(self.scratchpad_bytes, int)
                                                  or self.scratchpad_bytes <= 0):
            raise MappingError(f"Scratchpad size must be a positive number of bytes, not {self.scratchpad_bytes!r}")
        if not self.time_limit_s > 0:
            raise MappingError(f"ILP time limit must be a positive number of seconds, not {self.time_limit_s!r}")
        if not 0 <= self.mip_gap < 1:
            raise MappingError(f"ILP MIP gap must be in [0, 1), not {self.mip_gap!r}")
