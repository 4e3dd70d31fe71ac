"""The energy datasheet: energy of one command on one unit, and static power, from a technology table.

An :class:`EnergyTable` holds the technology numbers: energy per multiply and per add by operand
width, per byte moved one PE hop in the array, per SRAM read by macro size, per vector element
operation, per byte on the DMA bus, and leakage power per PE, per KiB of SRAM, per vector lane and
per DMA channel. The shipped default (``accel/tech/default_45nm.toml``, loaded once by
:func:`default_table`) cites its sources; every :class:`~accel.hardware.Accelerator` carries one as
``arch.energy`` and a preset's ``[energy]`` section overrides single fields of it. DRAM energy per
byte is ``arch.dram.energy_pj_per_byte``, not part of the table.

:func:`command_energy_pj` gives the dynamic energy of one command, by component, as a pure function
of the hardware and the command (like :mod:`accel.timing` gives its cycles), so the mapper can use
it as a cost model and the simulator charges exactly this per executed command. Components:

``array``        multiplies and adds at the array's widths, and operands moving one PE hop per MAC
``scratchpad``   SRAM reads and writes of the scratchpad
``accumulator``  SRAM reads and writes of the accumulator memory
``dram``         bytes moved to or from DRAM, in whole DMA bursts (as :func:`accel.timing.dma_cycles`)
``dma``          the on-chip bus between DRAM and the buffers
``vector``       element operations on the vector unit

The model, per command:

* ``Load``/``Store``: ``dram`` and ``dma`` for the burst-rounded bytes; the on-chip buffer is written
  (``Load``) or read (``Store``) for the bytes rounded up to whole words of that buffer.
* ``Compute`` (``batch`` tiles ``m x k @ k x n`` on an ``R x C`` array), by dataflow, with the folds
  of :mod:`accel.timing`: the stationary operand is read from the scratchpad once, the streaming
  operand once per fold along the other array dimension, and partial sums are read-modify-written
  in the accumulator once per fold along the reduction (WS, IS) or once at the end (OS):

  ==========  =====================  =====================  ==========================  ===========
  dataflow    inputs read (elems)    weights read (elems)   accumulator updates         hops / MAC
  ==========  =====================  =====================  ==========================  ===========
  WS          m*k * ceil(n/C)        k*n                    m*n * ceil(k/R)             input, psum
  OS          m*k * ceil(n/C)        k*n * ceil(m/R)        m*n                         input, weight
  IS          m*k                    k*n * ceil(m/C)        m*n * ceil(k/R)             weight, psum
  ==========  =====================  =====================  ==========================  ===========

  An update writes a partial sum and, unless it is the first of a tile that does not
  ``accumulate``, reads the old one first. Preloading the stationary operand through the array is
  not charged as hops.
* ``Vector``: ``elements`` operations, each reading and writing one input-format value in the
  scratchpad.

SRAM: one read of a 64-bit word (``sram_reference_word_bits``) costs the power-law interpolation of
``sram_read_pj_by_size_bytes`` at the size of one bank; energy per byte is that divided by the
reference word's bytes, for reads and writes alike. Multiplier and adder energies are power-law
interpolations of their tables by width; an ``a x w``-bit multiplier costs as a square one of
``sqrt(a * w)`` bits.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from accel.commands import Buffer, Command, Compute, Load, Move, Store, Vector
from accel.errors import ConfigError, unknown_field
from accel.hardware import Accelerator, Dataflow, Memory, Sparsity, is_int, is_number
from accel.timing import ceil_div
from accel.traffic import product_traffic

__all__ = [
    "COMPONENTS",
    "STATIC_COMPONENTS",
    "EnergyTable",
    "compute_energy_function",
    "transfer_energy_function",
    "default_table",
    "load_table",
    "table_from_dict",
    "table_to_dict",
    "multiply_pj",
    "add_pj",
    "mac_pj",
    "sram_pj_per_byte",
    "command_energy_pj",
    "static_power_mw",
]

COMPONENTS: tuple[str, ...] = ("array", "scratchpad", "accumulator", "dram", "dma", "vector")
"""Every component :func:`command_energy_pj` may charge, in report order."""

STATIC_COMPONENTS: tuple[str, ...] = ("array", "scratchpad", "accumulator", "dma", "vector")
"""Components with static power (DRAM background and refresh power are not modelled)."""

_DEFAULT_TABLE = "default_45nm.toml"
_CURVES = ("multiply_pj_by_bits", "add_pj_by_bits", "sram_read_pj_by_size_bytes")

Curve = tuple[tuple[int, float], ...]


@dataclass(frozen=True)
class EnergyTable:
    """Technology numbers for the energy model: dynamic pJ per event and static mW per unit.

    The three curve fields map a width in bits (or an SRAM size in bytes) to pJ; they may be given
    as a mapping or as ``(key, pJ)`` pairs and are stored as pairs sorted by key.
    """

    multiply_pj_by_bits: Curve
    add_pj_by_bits: Curve
    array_hop_pj_per_byte: float
    sram_read_pj_by_size_bytes: Curve
    sram_reference_word_bits: int
    vector_op_pj: float
    dma_pj_per_byte: float
    array_static_mw_per_pe: float
    sram_static_mw_per_kib: float
    vector_static_mw_per_lane: float
    dma_static_mw_per_channel: float

    def __post_init__(self) -> None:
        problems: list[str] = []
        for name in _CURVES:
            value = getattr(self, name)
            curve = _as_curve(value)
            if curve is None:
                problems.append(
                    f"{name} must map positive integers to positive numbers, such as {{ 8 = 0.2, 32 = 3.1 }}, "
                    f"not {value!r}"
                )
            else:
                object.__setattr__(self, name, curve)
        bits = self.sram_reference_word_bits
        if not is_int(bits) or bits < 8 or bits % 8:
            problems.append(f"sram_reference_word_bits must be a positive multiple of 8, not {bits!r}")
        for f in dataclasses.fields(self):
            if f.name in _CURVES or f.name == "sram_reference_word_bits":
                continue
            value = getattr(self, f.name)
            if not (is_number(value) and value >= 0):
                problems.append(f"{f.name} must be a non-negative number, not {value!r}")
        if problems:
            raise ConfigError("; ".join(problems))
        # figures derived from the table, by the other numbers they read (mac_pj, sram_pj_per_byte):
        # the mapper's search prices thousands of commands of one design; a table never changes
        object.__setattr__(self, "_derived", {})


def _derived(table: EnergyTable) -> dict[tuple, float]:
    derived = table.__dict__.get("_derived")
    if derived is None:  # a table made without __post_init__ (none is, but copying may): start one
        derived = {}
        object.__setattr__(table, "_derived", derived)
    return derived


def _as_curve(value: object) -> Curve | None:
    """Sorted ``(key, pJ)`` pairs from a mapping or pairs, or ``None`` if the value is not a curve."""
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, tuple | list):
        items = list(value)
    else:
        return None
    pairs = []
    for item in items:
        if not (isinstance(item, tuple | list) and len(item) == 2):
            return None
        key, energy = item
        if isinstance(key, str) and key.strip().isdigit():  # TOML table keys are strings
            key = int(key)
        if not (is_int(key) and key > 0 and is_number(energy) and energy > 0):
            return None
        pairs.append((key, float(energy)))
    if not pairs or len({k for k, _ in pairs}) != len(pairs):
        return None
    return tuple(sorted(pairs))


@functools.cache
def default_table() -> EnergyTable:
    """The shipped 45 nm table (``accel/tech/default_45nm.toml``), read once per process."""
    text = (resources.files("accel") / "tech" / _DEFAULT_TABLE).read_text()
    return _table_from_text(text, source=f"accel/tech/{_DEFAULT_TABLE}")


def load_table(path: str | Path) -> EnergyTable:
    """A whole table from a TOML file with every field of :class:`EnergyTable` at the top level."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read as text ({exc})") from None
    return _table_from_text(text, source=str(path))


def _table_from_text(text: str, *, source: str) -> EnergyTable:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML ({exc})") from None
    names = [f.name for f in dataclasses.fields(EnergyTable)]
    problems = [f"{name} is missing" for name in names if name not in data]
    problems += [unknown_field(key, names) for key in data if key not in names]
    if not problems:
        try:
            return EnergyTable(**data)
        except ConfigError as exc:
            problems = str(exc).split("; ")
    raise ConfigError("\n".join(f"{source}: {p}" for p in problems))


def table_from_dict(overrides: Mapping[str, Any], *, base: EnergyTable | None = None) -> EnergyTable:
    """``base`` (the default table if ``None``) with the fields in ``overrides`` replaced.

    Raises :class:`~accel.errors.ConfigError` whose ``"; "``-separated problems each start with the
    field name (``vector_op_pj must be a non-negative number, not -1``).
    """
    base = default_table() if base is None else base
    names = [f.name for f in dataclasses.fields(EnergyTable)]
    problems = [unknown_field(key, names) for key in overrides if key not in names]
    try:
        table = dataclasses.replace(base, **{key: value for key, value in overrides.items() if key in names})
    except ConfigError as exc:
        problems += str(exc).split("; ")
    if problems:
        raise ConfigError("; ".join(problems))
    return table


def table_to_dict(table: EnergyTable, *, only_diff_from: EnergyTable | None = None) -> dict[str, Any]:
    """The TOML form of ``table`` (curves as ``{key = pJ}`` tables); with ``only_diff_from``, only the
    fields that differ from that table, so :func:`table_from_dict` on it rebuilds ``table``."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(table):
        value = getattr(table, f.name)
        if only_diff_from is not None and getattr(only_diff_from, f.name) == value:
            continue
        out[f.name] = dict(value) if f.name in _CURVES else value
    return out


# -- the model ---------------------------------------------------------------------------------------

def _interpolate(curve: Curve, x: float) -> float:
    """Power-law (straight line in log-log) interpolation through the two nearest points; a single
    point is a constant; beyond the ends the nearest segment is extended."""
    if len(curve) == 1:
        return curve[0][1]
    i = 1
    while i < len(curve) - 1 and x > curve[i][0]:
        i += 1
    (x0, y0), (x1, y1) = curve[i - 1], curve[i]
    exponent = math.log(y1 / y0) / math.log(x1 / x0)
    return y0 * (x / x0) ** exponent


def multiply_pj(table: EnergyTable, a_bits: int, b_bits: int) -> float:
    """One ``a_bits x b_bits`` multiplication: a square multiplier of ``sqrt(a_bits * b_bits)`` bits."""
    return _interpolate(table.multiply_pj_by_bits, math.sqrt(a_bits * b_bits))


def add_pj(table: EnergyTable, bits: int) -> float:
    """One ``bits``-wide addition."""
    return _interpolate(table.add_pj_by_bits, bits)


def mac_pj(arch: Accelerator) -> float:
    """One MAC of the array: a multiply at the input x weight widths and an add at the accumulator width
    (memoised in the table by the three widths, all it reads besides the table)."""
    a = arch.array
    key = ("mac", a.input_format.bits, a.weight_format.bits, a.accumulator_format.bits)
    derived = _derived(arch.energy)
    pj = derived.get(key)
    if pj is None:
        pj = derived[key] = multiply_pj(arch.energy, a.input_format.bits, a.weight_format.bits) + add_pj(
            arch.energy, a.accumulator_format.bits
        )
    return pj


def sram_pj_per_byte(table: EnergyTable, memory: Memory) -> float:
    """Energy per byte read or written in ``memory``: one bank's reference-word read over its bytes
    (memoised in the table by the memory's size and banks, all it reads of the memory)."""
    key = ("sram", memory.size_bytes, memory.banks)
    derived = _derived(table)
    pj = derived.get(key)
    if pj is None:
        bank_bytes = memory.size_bytes / memory.banks
        pj = derived[key] = _interpolate(table.sram_read_pj_by_size_bytes, bank_bytes) \
            / (table.sram_reference_word_bits // 8)
    return pj


def _sram_pj(table: EnergyTable, memory: Memory, size_bytes: int) -> float:
    """``size_bytes`` read or written in ``memory``, rounded up to whole words."""
    words = ceil_div(size_bytes, memory.word_bytes)
    return words * memory.word_bytes * sram_pj_per_byte(table, memory)


def _buffer(arch: Accelerator, buffer: Buffer) -> Memory:
    return arch.scratchpad if buffer is Buffer.SCRATCHPAD else arch.accumulator


def _activation_pj(arch: Accelerator, command: Command) -> dict[str, float]:
    """A fused activation on the store path: one vector operation per value and function."""
    if not getattr(command, "activation", ""):
        return {}
    values = ceil_div(command.size_bytes, arch.array.input_format.size_bytes)
    return {"vector": values * len(command.activation.split(",")) * arch.energy.vector_op_pj}


def command_energy_pj(arch: Accelerator, command: Command) -> dict[str, float]:
    """Dynamic energy of one command in pJ, by component (only the components it touches; the
    kind's entry in :data:`accel.pricing.PRICING`)."""
    from accel.pricing import pricing

    return pricing(command).energy_pj(arch, command)


def transfer_energy_pj(arch: Accelerator, command: Load | Store) -> dict[str, float]:
    table = arch.energy
    burst = arch.dma.burst_bytes
    moved = ceil_div(command.size_bytes, burst) * burst
    energy = {
        "dram": moved * arch.dram.energy_pj_per_byte,
        "dma": moved * table.dma_pj_per_byte,
        command.buffer.value: _sram_pj(table, _buffer(arch, command.buffer), command.size_bytes),
    }
    return energy | _activation_pj(arch, command)


def move_energy_pj(arch: Accelerator, command: Move) -> dict[str, float]:
    table, a = arch.energy, arch.array
    values = ceil_div(command.size_bytes, a.input_format.size_bytes)
    return {
        "accumulator": _sram_pj(table, arch.accumulator, values * a.accumulator_format.size_bytes),
        "scratchpad": _sram_pj(table, arch.scratchpad, command.size_bytes),
    } | _activation_pj(arch, command)


def vector_energy_pj(arch: Accelerator, command: Vector) -> dict[str, float]:
    table = arch.energy
    value_bytes = arch.array.input_format.size_bytes
    return {
        "vector": command.elements * table.vector_op_pj,
        "scratchpad": 2 * _sram_pj(table, arch.scratchpad, command.elements * value_bytes),
    }


def compute_energy_pj(arch: Accelerator, c: Compute) -> dict[str, float]:
    array, scratchpad, accumulator = _compute_parts(_compute_constants(arch), c.dataflow, c.m, c.k, c.n, c.batch,
                                                    c.accumulate, c.sparsity)
    return {"array": array, "scratchpad": scratchpad, "accumulator": accumulator}


def _compute_constants(arch: Accelerator) -> tuple:
    """What :func:`_compute_parts` reads of the design, looked up once."""
    table, a = arch.energy, arch.array
    return (a, a.input_format.size_bytes, a.weight_format.size_bytes, a.accumulator_format.size_bytes,
            mac_pj(arch), table.array_hop_pj_per_byte, arch.scratchpad.word_bytes, arch.accumulator.word_bytes,
            sram_pj_per_byte(table, arch.scratchpad), sram_pj_per_byte(table, arch.accumulator))


def _compute_parts(constants: tuple, dataflow: Dataflow, m, k, n, batch, accumulate,  # noqa: ANN001, ANN202
                   sparsity: Sparsity | None):
    """``(array, scratchpad, accumulator)`` pJ of a compute: its MACs and hops, then per product its
    SRAM accesses rounded to whole words (:func:`_sram_pj`), the traffic from
    :func:`accel.traffic.product_traffic`. Plain arithmetic on the sizes: elementwise on numpy arrays
    (a psum read count of 0 rounds to 0 words, so it adds 0.0 as :func:`_sram_pj` of nothing does)."""
    a, in_b, w_b, acc_b, mac, hop_pj, spad_word, acc_word, spad_pj, acc_pj = constants
    inputs, weights, outputs, updates, psum_reads, hop = product_traffic(a, dataflow, m, k, n, accumulate, sparsity)
    array = batch * m * k * n * (mac + hop * hop_pj)
    scratchpad = batch * (-(-inputs * in_b // spad_word) * spad_word * spad_pj
                          + -(-weights * w_b // spad_word) * spad_word * spad_pj)
    accumulator = batch * (-(-outputs * updates * acc_b // acc_word) * acc_word * acc_pj
                           + -(-psum_reads * acc_b // acc_word) * acc_word * acc_pj)
    return array, scratchpad, accumulator


def compute_energy_function(arch: Accelerator) -> Callable[..., float]:
    """``energy(dataflow, m, k, n, batch, accumulate, sparsity)``: the sum of :func:`compute_energy_pj`'s
    components (array, then scratchpad, then accumulator, as ``sum(...values())`` adds them) of a
    compute of that shape on ``arch``, bit for bit (both are :func:`_compute_parts`), with the design's
    constants (MAC energy, the buffers' energy per byte and word sizes) looked up once: what the
    mapper's search prices a new compute shape with; elementwise when the sizes and ``accumulate``
    are numpy arrays. ``tests/test_energy.py`` checks it against :func:`command_energy_pj`."""
    constants = _compute_constants(arch)

    def energy(dataflow: Dataflow, m: int, k: int, n: int, batch: int, accumulate: bool,
               sparsity: Sparsity | None) -> float:
        array, scratchpad, accumulator = _compute_parts(constants, dataflow, m, k, n, batch, accumulate, sparsity)
        return 0 + array + scratchpad + accumulator

    return energy


def transfer_energy_function(arch: Accelerator) -> Callable[[int, Buffer], float]:
    """``energy(size_bytes, buffer)``: the sum of :func:`transfer_energy_pj`'s components (DRAM, DMA,
    then the buffer, as ``sum(...values())`` adds them) of a load or store of ``size_bytes`` to or from
    ``buffer`` without a fused activation, bit for bit, with the design's constants looked up once.
    ``tests/test_energy.py`` checks it against :func:`command_energy_pj`."""
    table = arch.energy
    burst, dram_pj, dma_pj = arch.dma.burst_bytes, arch.dram.energy_pj_per_byte, table.dma_pj_per_byte
    words = {b: (_buffer(arch, b).word_bytes, sram_pj_per_byte(table, _buffer(arch, b))) for b in Buffer}

    def energy(size_bytes: int, buffer: Buffer) -> float:
        moved = -(-size_bytes // burst) * burst
        word_bytes, per_byte = words[buffer]
        return 0 + moved * dram_pj + moved * dma_pj + -(-size_bytes // word_bytes) * word_bytes * per_byte

    return energy


def static_power_mw(arch: Accelerator) -> dict[str, float]:
    """Leakage power of each unit in mW (the keys of :data:`STATIC_COMPONENTS`)."""
    table = arch.energy
    return {
        "array": arch.array.pes * table.array_static_mw_per_pe,
        "scratchpad": arch.scratchpad.size_bytes / 1024 * table.sram_static_mw_per_kib,
        "accumulator": arch.accumulator.size_bytes / 1024 * table.sram_static_mw_per_kib,
        "dma": arch.dma.channels * table.dma_static_mw_per_channel,
        "vector": arch.vector.lanes * table.vector_static_mw_per_lane,
    }
