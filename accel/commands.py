"""The command set: what the mapper emits, the simulator executes, and an RTL top level could decode.

Four commands, like a small ISA. Each has a program-unique ``id``, the ``layer`` it belongs to, and
``deps``: ids of earlier commands that must finish before it may start (data dependencies and
buffer reuse). Units execute their own commands in program order.

``Load``     DRAM -> on-chip buffer (DMA)
``Store``    on-chip buffer -> DRAM (DMA)
``Move``     accumulator -> scratchpad on chip (the store path's requantizing read, no DRAM): results
             that stay resident for a later layer
``Compute``  ``batch`` GEMM tiles ``m x k @ k x n`` on the systolic array, reading inputs and weights from
             the scratchpad and accumulating into the accumulator memory
``Vector``   ``elements`` element operations on the vector unit
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from accel.hardware import Dataflow, Sparsity

__all__ = ["Unit", "Buffer", "Command", "Load", "Store", "Move", "Compute", "Vector"]


class Unit(Enum):
    DMA = "dma"
    ARRAY = "array"
    VECTOR = "vector"


class Buffer(Enum):
    SCRATCHPAD = "scratchpad"
    ACCUMULATOR = "accumulator"


@dataclass(frozen=True, kw_only=True)
class Command:
    id: int
    layer: str
    deps: tuple[int, ...] = ()

    unit = Unit.DMA  # overridden per kind; a class attribute, not a field


@dataclass(frozen=True, kw_only=True)
class Load(Command):
    tensor: str
    size_bytes: int
    buffer: Buffer = Buffer.SCRATCHPAD
    addr: int = 0  # byte offset in the on-chip buffer
    dram_addr: int = 0

    unit = Unit.DMA


@dataclass(frozen=True, kw_only=True)
class Store(Command):
    tensor: str
    size_bytes: int
    buffer: Buffer = Buffer.ACCUMULATOR
    addr: int = 0
    dram_addr: int = 0
    activation: str = ""  # functions the accumulator's read path applies on the way out ("relu", "a,b")

    unit = Unit.DMA


@dataclass(frozen=True, kw_only=True)
class Move(Command):
    """``size_bytes`` of results (in the input format) from the accumulator at ``src_addr`` to the
    scratchpad at ``addr``; ``tensor`` names what is moved. Runs on the DMA's store queue."""

    tensor: str
    size_bytes: int
    src_addr: int = 0
    addr: int = 0
    activation: str = ""  # as Store.activation

    unit = Unit.DMA


@dataclass(frozen=True, kw_only=True)
class Compute(Command):
    m: int
    k: int
    n: int
    dataflow: Dataflow
    batch: int = 1  # independent products run back to back (convolution groups, attention heads)
    input_addr: int = 0
    weight_addr: int = 0
    output_addr: int = 0
    accumulate: bool = False  # add to what the accumulator holds (a later k-tile)
    fill: bool = True  # starts its folds: pays preload and skew (False: continues the previous command's fold)
    drain: bool = True  # ends its folds: pays the drain (False: the next command continues the fold)
    sparsity: Sparsity | None = None  # N:M weights: ``k`` is the compressed reduction (n kept per group of m)
    # double-buffered weights (``array.weight_buffers = 2``): the stream length of the previous
    # command's last fold, behind which this command's first fold's weights shifted in (its fill and
    # the previous fold's drain overlap); 0: the first fold pays its full fill
    follows: int = 0

    unit = Unit.ARRAY

    @property
    def macs(self) -> int:
        """Multiply-accumulates the array performs (for N:M, ``n/m`` of the dense layer's)."""
        return self.batch * self.m * self.k * self.n


@dataclass(frozen=True, kw_only=True)
class Vector(Command):
    op: str
    elements: int
    macs: int = 0  # multiply-accumulates among the elements (a depthwise convolution on the vector unit)
    input_addr: int = 0
    output_addr: int = 0

    unit = Unit.VECTOR
