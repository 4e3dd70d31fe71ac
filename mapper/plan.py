"""The plan: how a graph runs on an accelerator (the seam between the mapper and the simulator).

A :class:`Plan` holds, for each layer in schedule order, its :class:`LayerMapping` (dataflow, tile sizes, loop
order, tile count) and the whole command program in issue order. Derived figures (DRAM traffic,
MACs) are properties computed from the commands, so they cannot drift from what runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from accel.commands import Command, Compute, Load, Store, Vector
from accel.hardware import Accelerator, Dataflow, Sparsity
from mapper.allocate import Allocation
from mapper.lifetimes import MemoryProblem
from workloads.graph import GemmShape, Graph, OpKind

__all__ = ["Tile", "LayerMapping", "Plan"]


@dataclass(frozen=True)
class Tile:
    """Tile sizes of a GEMM layer: ``b`` groups x ``m`` rows x ``k`` reduction x ``n`` columns."""

    m: int
    k: int
    n: int
    b: int = 1


@dataclass(frozen=True)
class LayerMapping:
    layer: str
    op: OpKind
    macs: int
    dataflow: Dataflow | None = None  # None for layers that do not use the array
    tile: Tile | None = None
    loop_order: str = ""  # "tile-outer" or "fold-outer" (see mapper.lower)
    tiles: int = 0  # number of compute commands (GEMM) or chunks (vector) the layer runs as
    gemm: GemmShape | None = None  # the layer's whole GEMM, for array layers
    sparsity: Sparsity | None = None  # the N:M pattern the array runs this layer with (None: dense)
    # the mapping search's datasheet estimate of the chosen mapping, and the layer's roofline bound
    # max(MACs / peak, compulsory DRAM bytes / bandwidth), in cycles (0 where not estimated)
    estimate_cycles: float = 0.0
    estimate_energy_pj: float = 0.0
    roofline_cycles: float = 0.0
    candidates: int = 0  # mappings priced
    pareto: int = 0  # of which not dominated

    @property
    def roofline_fraction(self) -> float | None:
        """How close the estimate is to the roofline bound (1.0: on it), or ``None``."""
        return self.roofline_cycles / self.estimate_cycles if self.estimate_cycles else None


@dataclass(frozen=True)
class Plan:
    arch: Accelerator
    graph_name: str
    layers: tuple[LayerMapping, ...]
    commands: tuple[Command, ...]
    graph: Graph | None = field(default=None, compare=False, repr=False)  # what was lowered
    # with a scratchpad allocator: the allocation problem (its ``steps`` are the schedule), the
    # allocator's answer, and each layer's working space in bytes
    problem: MemoryProblem | None = field(default=None, compare=False)
    allocation: Allocation | None = field(default=None, compare=False)
    working_bytes: Mapping[str, int] | None = field(default=None, compare=False)

    @property
    def dram_read_bytes(self) -> int:
        return sum(c.size_bytes for c in self.commands if isinstance(c, Load))

    @property
    def dram_write_bytes(self) -> int:
        return sum(c.size_bytes for c in self.commands if isinstance(c, Store))

    @property
    def dram_bytes(self) -> int:
        return self.dram_read_bytes + self.dram_write_bytes

    @property
    def macs(self) -> int:
        """The workload's MACs (dense-equivalent)."""
        return sum(m.macs for m in self.layers)

    @property
    def performed_macs(self) -> int:
        """The multiply-accumulates the hardware performs: fewer than :attr:`macs` for N:M layers."""
        return sum(c.macs for c in self.commands if isinstance(c, Compute | Vector))

    @property
    def vector_ops(self) -> int:
        return sum(c.elements for c in self.commands if isinstance(c, Vector))
