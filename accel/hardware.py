"""The hardware description: one frozen dataclass tree per design point.

An :class:`Accelerator` is a clock, a systolic array, a vector unit, an on-chip scratchpad and
accumulator memory, a DMA engine and DRAM. Every class validates itself at construction and raises
:class:`~accel.errors.ConfigError` listing every field that is wrong, e.g.
``rows must be a positive integer, not -4``; the TOML loader (:mod:`accel.config`) prefixes those
messages with the file and section.

Units are in the names: ``clock_hz``, ``size_bytes``, ``bandwidth_bytes_per_cycle`` (at the
accelerator clock), ``latency_cycles``, ``energy_pj_per_byte``.

An accelerator also carries its technology numbers for the energy model, ``energy``: an
:class:`~accel.energy.EnergyTable`, by default the shipped 45 nm table (read once per process), and
for the area model, ``area``: an :class:`~accel.area.AreaTable` (``accel/tech/area_45nm.toml``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import TYPE_CHECKING

from accel.errors import ConfigError
from accel.formats import INT8, INT32, NumberFormat, Requantization
from accel.hashonce import hash_once

if TYPE_CHECKING:  # accel.energy and accel.area import this module, so this one imports them lazily
    from accel.area import AreaTable
    from accel.energy import EnergyTable

__all__ = [
    "Dataflow",
    "Sparsity",
    "SystolicArray",
    "VectorUnit",
    "Memory",
    "DMA",
    "DRAM",
    "ActivationPath",
    "Control",
    "Accelerator",
    "is_int",
    "is_number",
]


class Dataflow(Enum):
    """Which operand stays in the processing elements while the others stream through."""

    WS = "ws"  # weight-stationary: weights preloaded, inputs stream, partial sums flow down
    OS = "os"  # output-stationary: each PE accumulates one output, inputs and weights stream
    IS = "is"  # input-stationary: inputs preloaded, weights stream

    __hash__ = object.__hash__  # members are singletons: hash by identity, in C (Enum's hashes the name in Python)

    @classmethod
    def parse(cls, text: str) -> Dataflow:
        try:
            return cls(str(text).strip().lower())
        except ValueError:
            raise ConfigError(f"Dataflow must be one of 'ws', 'os', 'is', not {text!r}") from None


@dataclass(frozen=True, order=True)
class Sparsity:
    """An N:M structured-sparsity pattern: at most ``n`` non-zeros in every group of ``m``."""

    n: int
    m: int

    def __post_init__(self) -> None:
        if not (is_int(self.n) and is_int(self.m) and 1 <= self.n < self.m):
            raise ConfigError(f"N:M sparsity needs integers 1 <= N < M, not {self.n}:{self.m}")

    @classmethod
    def parse(cls, text: str) -> Sparsity:
        parts = str(text).strip().split(":")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise ConfigError(f"N:M sparsity must look like '2:4', not {text!r}")
        return cls(int(parts[0]), int(parts[1]))

    @property
    def density(self) -> float:
        return self.n / self.m

    @property
    def index_bits(self) -> int:
        """Bits of the index that places each kept value within its group of ``m``."""
        return max(1, (self.m - 1).bit_length())

    def compressed_bytes(self, kept_values: int, value_bits: int) -> int:
        """Bytes of ``kept_values`` stored values and their indices: a value region and an index
        region, each a bit stream padded to a whole byte (``sim.numerics.nm_to_bytes``' layout)."""
        return -(-kept_values * value_bits // 8) + -(-kept_values * self.index_bits // 8)

    def compressed_k(self, k: int) -> int:
        """Kept values along a reduction of ``k``: ``n`` per group of ``m`` (the last group padded)."""
        return -(-k // self.m) * self.n

    def __str__(self) -> str:
        return f"{self.n}:{self.m}"


def is_int(value: object) -> bool:
    """An integer, not a bool (``True`` is no size): the check of every integer field of a design."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """A finite int or float, not a bool: the check of every numeric field of a design."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _raise_problems(problems: list[str]) -> None:
    if problems:
        raise ConfigError("; ".join(problems))


#: The largest integer a description field may hold (1 Ti): larger ones (``rows = 10**20``) are typos
#: that would overflow native integers downstream.
_MAX_INT = 2**40


def _positive_ints(obj: object, *names: str, zero_ok: tuple[str, ...] = ()) -> list[str]:
    problems = []
    for name in names:
        value = getattr(obj, name)
        lowest = 0 if name in zero_ok else 1
        if not is_int(value) or value < lowest:
            kind = "a non-negative" if lowest == 0 else "a positive"
            problems.append(f"{name} must be {kind} integer, not {value!r}")
        elif value > _MAX_INT:
            problems.append(f"{name} must be at most 2**40 ({_MAX_INT:,}), not {value:,}")
    return problems


def _positive_numbers(obj: object, *names: str, zero_ok: tuple[str, ...] = ()) -> list[str]:
    problems = []
    for name in names:
        value = getattr(obj, name)
        ok = is_number(value) and (value >= 0 if name in zero_ok else value > 0)
        if not ok:
            kind = "a non-negative" if name in zero_ok else "a positive"
            problems.append(f"{name} must be {kind} number, not {value!r}")
    return problems


@dataclass(frozen=True)
class SystolicArray:
    """A ``rows`` x ``cols`` grid of multiply-accumulate processing elements."""

    rows: int
    cols: int
    dataflows: tuple[Dataflow, ...] = (Dataflow.WS,)
    input_format: NumberFormat = INT8
    weight_format: NumberFormat = INT8
    accumulator_format: NumberFormat = INT32
    sparsity: tuple[Sparsity, ...] = ()  # N:M patterns the array runs natively, besides dense
    requant: Requantization = Requantization.TFLITE_DOUBLE  # how the accumulator's read path scales
    # registers per PE for the stationary operand: 2 lets the next fold's weights shift in while the
    # current fold computes (TPU v1, Gemmini); see accel.timing.gemm_tile_cycles
    weight_buffers: int = 1
    # whether a fold's stream may run over several Computes (``fill`` / ``drain`` false: the stationary
    # operand stays in the PEs between commands, as Gemmini's preload-once compute does); False: every
    # Compute fills and drains its own folds, as rtl.npu's array does, and the mapper emits only such
    split_folds: bool = True

    def __post_init__(self) -> None:
        problems = _positive_ints(self, "rows", "cols")
        if not isinstance(self.split_folds, bool):
            problems.append(f"split_folds must be true or false, not {self.split_folds!r}")
        if not isinstance(self.requant, Requantization):
            problems.append(f"requant must be one of {', '.join(repr(r.value) for r in Requantization)}, "
                            f"not {self.requant!r}")
        if self.weight_buffers not in (1, 2) or not is_int(self.weight_buffers):
            problems.append(f"weight_buffers must be 1 or 2, not {self.weight_buffers!r}")
        if not self.dataflows or not all(isinstance(d, Dataflow) for d in self.dataflows):
            problems.append(f"dataflows must be a non-empty list of 'ws', 'os', 'is', not {self.dataflows!r}")
        elif len(set(self.dataflows)) != len(self.dataflows):
            problems.append(f"dataflows must not repeat, not {[d.value for d in self.dataflows]!r}")
        for name in ("input_format", "weight_format", "accumulator_format"):
            if not isinstance(getattr(self, name), NumberFormat):
                problems.append(f"{name} must be a number format, not {getattr(self, name)!r}")
        if not all(isinstance(s, Sparsity) for s in self.sparsity):
            problems.append(f"sparsity must be a list of N:M patterns, not {self.sparsity!r}")
        else:
            if len(set(self.sparsity)) != len(self.sparsity):
                problems.append(f"sparsity must not repeat a pattern, not {[str(s) for s in self.sparsity]!r}")
            if is_int(self.rows) and self.rows > 0:
                for s in dict.fromkeys(self.sparsity):
                    if self.rows % s.n:  # each row group of the sparse tile holds one group's N kept weights
                        problems.append(f"rows must be a multiple of N to run {s} sparsity, not {self.rows}")
        _raise_problems(problems)

    @property
    def pes(self) -> int:
        return self.rows * self.cols


@dataclass(frozen=True)
class VectorUnit:
    """A SIMD unit for element-wise work: ``lanes`` operations per cycle after a pipeline latency."""

    lanes: int = 16
    latency_cycles: int = 4

    def __post_init__(self) -> None:
        _raise_problems(_positive_ints(self, "lanes", "latency_cycles", zero_ok=("latency_cycles",)))


@dataclass(frozen=True)
class Memory:
    """An on-chip SRAM: ``banks`` banks of ``word_bytes``-wide words, ``ports`` ports per bank."""

    size_bytes: int
    banks: int = 1
    ports: int = 2
    word_bytes: int = 16

    def __post_init__(self) -> None:
        problems = _positive_ints(self, "size_bytes", "banks", "ports", "word_bytes")
        if not problems and self.size_bytes % (self.banks * self.word_bytes):
            problems.append(
                f"size_bytes must be a multiple of banks * word_bytes = {self.banks * self.word_bytes}, "
                f"not {self.size_bytes}"
            )
        _raise_problems(problems)

    @property
    def bandwidth_bytes_per_cycle(self) -> int:
        """Peak bytes moved per cycle over all banks and ports."""
        return self.banks * self.ports * self.word_bytes


@dataclass(frozen=True)
class DMA:
    """Engines that move data between DRAM and the scratchpad."""

    channels: int = 1
    bandwidth_bytes_per_cycle: float = 16.0  # per channel
    latency_cycles: int = 0  # setup cost per transfer, on top of DRAM latency
    burst_bytes: int = 64  # transfers move whole bursts
    # the request structure (0: a transfer is one stream of bursts): each row of a transfer goes out
    # as requests of at most max_request_bytes, at most max_in_flight of them awaiting DRAM at once
    max_request_bytes: int = 0
    max_in_flight: int = 0

    def __post_init__(self) -> None:
        problems = _positive_ints(self, "channels", "latency_cycles", "burst_bytes", "max_request_bytes",
                                  "max_in_flight", zero_ok=("latency_cycles", "max_request_bytes", "max_in_flight"))
        problems += _positive_numbers(self, "bandwidth_bytes_per_cycle")
        _raise_problems(problems)


@dataclass(frozen=True)
class DRAM:
    """Off-chip memory: a bandwidth-limited channel with a fixed access latency."""

    bandwidth_bytes_per_cycle: float
    latency_cycles: int = 100
    energy_pj_per_byte: float = 20.0

    def __post_init__(self) -> None:
        problems = _positive_numbers(self, "bandwidth_bytes_per_cycle", "energy_pj_per_byte",
                                     zero_ok=("energy_pj_per_byte",))
        problems += _positive_ints(self, "latency_cycles", zero_ok=("latency_cycles",))
        _raise_problems(problems)


@dataclass(frozen=True)
class ActivationPath:
    """Element functions the accumulator-to-scratchpad path applies to results on their way out.

    TPU v1's Activate unit (ReLU, sigmoid, tanh on the accumulators' read path, Jouppi et al.,
    ISCA 2017) and Gemmini's ``mvout`` (scaling and ReLU / ReLU6, Genc et al., DAC 2021) are such
    paths. An activation layer whose function is listed and that follows an array layer is fused
    into that layer's output by the mapper (:mod:`mapper.fuse`): it costs no vector pass and no DRAM
    round trip, only its energy on the store path. Empty (the default): nothing is fused.
    Names are the IR's activation functions (``relu``, ``relu6``, ``clip``, ``sigmoid``, ``tanh``,
    ``quantize``, ...).

    ``latency_cycles``: the pipeline depth of the path (the requantizer's, from the command's start
    to its first result): a ``Move`` (accumulator to scratchpad, no DMA or DRAM latency to hide it
    behind) takes these cycles on top of its beats (:func:`accel.timing.move_cycles`); a ``Store``
    hides them behind its DMA and DRAM latency. 0 (the default): a combinational path.
    """

    functions: tuple[str, ...] = ()
    latency_cycles: int = 0

    def __post_init__(self) -> None:
        _raise_problems(_positive_ints(self, "latency_cycles", zero_ok=("latency_cycles",)))
        if not isinstance(self.functions, tuple) or not all(
                isinstance(f, str) and f.strip() and f == f.strip().lower() for f in self.functions):
            raise ConfigError(f"functions must be a list of lower-case function names such as ['relu'], "
                              f"not {self.functions!r}")


@dataclass(frozen=True)
class Control:
    """How commands reach the units: issued one by one by a host (Gemmini's Rocket core over RoCC) or
    by a sequencer on the chip.

    ``issue_cycles``: host cycles to issue one command, in program order (0: the units see the
    whole program at once, the default). ``queue_depth``: how many issued commands may be unfinished
    at once (a command queue or reorder buffer; command ``i`` issues only after command
    ``i - queue_depth`` has finished; 0: unbounded, the default). With both 0 the simulator has no host
    stage and its results are those of a design without one.
    """

    issue_cycles: int = 0
    queue_depth: int = 0

    def __post_init__(self) -> None:
        _raise_problems(_positive_ints(self, "issue_cycles", "queue_depth", zero_ok=("issue_cycles", "queue_depth")))

    @property
    def host_issued(self) -> bool:
        return bool(self.issue_cycles or self.queue_depth)


def _default_energy_table() -> EnergyTable:
    from accel.energy import default_table  # not at the top: accel.energy imports this module

    return default_table()


def _default_area_table() -> AreaTable:
    from accel.area import default_area_table  # not at the top: accel.area imports this module

    return default_area_table()


@hash_once
@dataclass(frozen=True)
class Accelerator:
    """One design point: everything the mapper, the simulator and the RTL need to know."""

    name: str
    clock_hz: float
    array: SystolicArray
    scratchpad: Memory
    accumulator: Memory
    dram: DRAM
    dma: DMA = field(default_factory=DMA)
    vector: VectorUnit = field(default_factory=VectorUnit)
    activation: ActivationPath = field(default_factory=ActivationPath)
    control: Control = field(default_factory=Control)
    description: str = ""
    energy: EnergyTable = field(default_factory=_default_energy_table)
    area: AreaTable = field(default_factory=_default_area_table)

    def __post_init__(self) -> None:
        from accel.area import AreaTable
        from accel.energy import EnergyTable

        problems = []
        if not isinstance(self.name, str) or not self.name.strip():
            problems.append(f"name must be a non-empty string, not {self.name!r}")
        problems += _positive_numbers(self, "clock_hz")
        if not isinstance(self.description, str):
            problems.append(f"description must be a string, not {self.description!r}")
        for f in fields(self):
            expected = {"array": SystolicArray, "scratchpad": Memory, "accumulator": Memory,
                        "dram": DRAM, "dma": DMA, "vector": VectorUnit, "energy": EnergyTable,
                        "area": AreaTable, "activation": ActivationPath, "control": Control}.get(f.name)
            if expected is not None and not isinstance(getattr(self, f.name), expected):
                article = "an" if expected.__name__[0] in "AEIOU" else "a"
                problems.append(f"{f.name} must be {article} {expected.__name__}, not {getattr(self, f.name)!r}")
        _raise_problems(problems)

    @property
    def peak_macs_per_cycle(self) -> int:
        return self.array.pes

    @property
    def peak_macs_per_s(self) -> float:
        return self.array.pes * self.clock_hz

    @property
    def dram_bandwidth_bytes_per_cycle(self) -> float:
        """What DMA can really move per cycle: the narrower of DRAM and all DMA channels together."""
        return min(self.dram.bandwidth_bytes_per_cycle, self.dma.channels * self.dma.bandwidth_bytes_per_cycle)
