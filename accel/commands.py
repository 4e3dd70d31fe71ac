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

**Data.** Besides their timing fields, commands name exactly the bytes they touch, so that a plan
can be run on data (:func:`sim.execute.execute`) and decoded by hardware:

* a transfer's DRAM side (``Load``/``Store``) or on-chip destination (``Move``) is a :class:`Block`:
  ``planes x rows`` runs of ``row_bytes`` contiguous bytes (a 3-D DMA descriptor; ``None``: one
  contiguous run of ``size_bytes``); the other side is always packed (run after run);
* a ``Compute`` carries its tile's ``origin`` ``(b0, m0, k0, n0)`` in its layer's GEMM (which groups,
  output rows, reduction and columns it computes) and the blocks of operands it reads in place from a
  resident tensor (``input_block``, ``weight_block``; ``None``: packed); a ``Vector`` its chunk
  (``origin``, ``extent``) and its operands' addresses and blocks the same way;
* a ``Store`` of raw 32-bit partial sums (a later fold reloads them) says ``raw``; every other
  store or move from the accumulator requantizes on its way out.

The layouts those bytes follow (tensors in DRAM, tiles in the buffers) are :mod:`mapper.layout`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from accel.hardware import Dataflow, Sparsity

__all__ = ["Unit", "Buffer", "Block", "Command", "Load", "Store", "Move", "Compute", "Vector"]


class Unit(Enum):
    __hash__ = object.__hash__  # members are singletons: hash by identity, in C (Enum's hashes the name in Python)
    DMA = "dma"
    ARRAY = "array"
    VECTOR = "vector"


class Buffer(Enum):
    __hash__ = object.__hash__  # members are singletons: hash by identity, in C (Enum's hashes the name in Python)
    SCRATCHPAD = "scratchpad"
    ACCUMULATOR = "accumulator"


@dataclass(frozen=True, slots=True)
class Block:
    """A strided block of bytes: ``planes x rows`` runs of ``row_bytes`` contiguous bytes, run
    ``(p, r)`` starting ``p * plane_stride + r * row_stride`` bytes after the block's first byte
    (runs in that order: plane after plane, row after row). Its size is ``planes * rows * row_bytes``."""

    rows: int
    row_bytes: int
    row_stride: int
    planes: int = 1
    plane_stride: int = 0

    @property
    def size_bytes(self) -> int:
        return self.planes * self.rows * self.row_bytes

    @property
    def span_bytes(self) -> int:
        """Bytes from the first byte to one past the last (what the block's memory must hold)."""
        if not self.size_bytes:
            return 0
        return (self.planes - 1) * self.plane_stride + (self.rows - 1) * self.row_stride + self.row_bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class Command:
    id: int
    layer: str
    deps: tuple[int, ...] = ()

    unit = Unit.DMA  # overridden per kind; a class attribute, not a field


@dataclass(frozen=True, kw_only=True, slots=True)
class Load(Command):
    tensor: str
    size_bytes: int
    buffer: Buffer = Buffer.SCRATCHPAD
    addr: int = 0  # byte offset in the on-chip buffer
    dram_addr: int = 0  # of the first byte moved
    dram: Block | None = None  # the DRAM bytes moved (None: ``size_bytes`` contiguous bytes)

    unit = Unit.DMA


@dataclass(frozen=True, kw_only=True, slots=True)
class Store(Command):
    """``size_bytes`` bytes to DRAM: from the scratchpad a copy; from the accumulator its 32-bit words
    (``size_bytes / out-bytes`` of them) requantized to the input format, or copied ``raw``."""

    tensor: str
    size_bytes: int
    buffer: Buffer = Buffer.ACCUMULATOR
    addr: int = 0
    dram_addr: int = 0
    activation: str = ""  # functions the accumulator's read path applies on the way out ("relu", "a,b")
    dram: Block | None = None  # as Load.dram
    raw: bool = False  # 32-bit partial sums, copied as they are (a later fold loads them back)

    unit = Unit.DMA


@dataclass(frozen=True, kw_only=True, slots=True)
class Move(Command):
    """``size_bytes`` of results (in the input format) from the accumulator at ``src_addr`` to the
    scratchpad at ``addr``; ``tensor`` names what is moved. Runs on the DMA's store queue."""

    tensor: str
    size_bytes: int
    src_addr: int = 0
    addr: int = 0
    activation: str = ""  # as Store.activation
    dst: Block | None = None  # the scratchpad bytes written from ``addr`` (None: contiguous)

    unit = Unit.DMA


@dataclass(frozen=True, kw_only=True, slots=True)
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
    origin: tuple[int, int, int, int] = (0, 0, 0, 0)  # (b0, m0, k0, n0) of this tile in its layer's GEMM
    input_block: Block | None = None  # the input operand's bytes from ``input_addr`` (None: packed)
    weight_block: Block | None = None  # the weights' bytes from ``weight_addr`` (None: packed)

    unit = Unit.ARRAY

    @property
    def macs(self) -> int:
        """Multiply-accumulates the array performs (for N:M, ``n/m`` of the dense layer's)."""
        return self.batch * self.m * self.k * self.n


@dataclass(frozen=True, kw_only=True, slots=True)
class Vector(Command):
    op: str
    elements: int
    macs: int = 0  # multiply-accumulates among the elements (a depthwise convolution on the vector unit)
    input_addr: int = 0
    output_addr: int = 0
    second_addr: int = 0  # of a second input (an element-wise binary operation)
    # the chunk of the layer this command computes: elements [origin, origin + extent) of its
    # tensors in their storage order (element-wise), or channels (per-channel: pools, depthwise)
    origin: int = 0
    extent: int = 0
    # the bytes of operands read or written in place in a resident tensor (None: packed)
    input_block: Block | None = None
    second_block: Block | None = None
    output_block: Block | None = None
    part: int = 0  # which input of its layer it reads (a concatenation: one command per input and chunk)

    unit = Unit.VECTOR
