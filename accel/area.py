"""Silicon area of an accelerator description, by component, from a 45 nm technology table.

:func:`area_mm2` prices every unit of an :class:`accel.hardware.Accelerator` from its mechanism:

* a **PE** is an ``a x b`` multiplier (area ~ ``a * b``), an accumulator-wide adder, and registers
  for both operands, the stationary operand and the accumulator;
* an array that runs **N:M sparse** weights adds, as :class:`rtl.sparse_pe.SparsePE` does, per
  group of ``N`` multipliers: ``N`` ``M:1`` activation selects, the ``M - N`` activation registers
  the group passes on beyond the dense ``N``, and ``N`` stored indices (sized for the largest ``N``
  and ``M`` the array lists);
* an **SRAM** (scratchpad, accumulator) is its bits (a cell with its share of decoders and wiring)
  plus, per bank, a column periphery per word bit (sense amplifier, write driver, column mux), all
  grown by the share each extra port adds: constants fitted to CACTI 7 at 45 nm;
* a **vector lane** is an accumulator-wide multiplier, adder and register set;
* **DMA** channels and **control** are their registers and address adders.

The numbers come from :class:`AreaTable` (default ``accel/tech/area_45nm.toml``, whose fields cite
their sources); a design's ``[area]`` section (:attr:`accel.hardware.Accelerator.area`) and
``overrides`` replace single fields, as ``[energy]`` does for the energy table. The result is an
:class:`AreaBreakdown` (mm2 per component, ``total_mm2``). Logic is counted as its cells without
wiring, clock tree or placement utilisation, and SRAM as CACTI lays out a macro, so the figures are
lower bounds of a laid-out chip's area (a chip's floor plan adds routing, I/O and whatever this
description does not hold, such as per-PE register files).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from accel.errors import ConfigError, unknown_field
from accel.hardware import Accelerator, Memory

__all__ = ["AreaTable", "AreaBreakdown", "default_area_table", "area_table", "area_mm2", "pe_area_um2",
           "sparse_select_um2", "sram_area_um2"]


@dataclass(frozen=True)
class AreaTable:
    """Areas of a technology in um2 (see ``accel/tech/area_45nm.toml`` for each field's source)."""

    multiplier_um2_per_bit2: float
    adder_um2_per_bit: float
    register_um2_per_bit: float
    mux2_um2: float
    sram_um2_per_bit: float
    sram_um2_per_bank_word_bit: float
    sram_extra_port_fraction: float
    dma_channel_register_bits: float
    dma_channel_adder_bits: float
    control_register_bits: float

    def __post_init__(self) -> None:
        problems = [f"area.{f.name} must be a non-negative number, not {getattr(self, f.name)!r}"
                    for f in dataclasses.fields(self)
                    if not isinstance(getattr(self, f.name), int | float) or isinstance(getattr(self, f.name), bool)
                    or getattr(self, f.name) < 0]
        if problems:
            raise ConfigError("; ".join(problems))


@dataclass(frozen=True)
class AreaBreakdown:
    """Area in mm2 by component; ``total_mm2`` is their sum."""

    pe_array_mm2: float
    sparse_select_mm2: float
    scratchpad_mm2: float
    accumulator_mm2: float
    vector_mm2: float
    dma_mm2: float
    control_mm2: float

    @property
    def total_mm2(self) -> float:
        return sum(self.to_dict().values())

    def to_dict(self) -> dict[str, float]:
        """Components by name (without the total)."""
        return dataclasses.asdict(self)


@functools.cache
def default_area_table() -> AreaTable:
    """The shipped 45 nm table (``accel/tech/area_45nm.toml``), read once per process."""
    path = Path(__file__).with_name("tech") / "area_45nm.toml"
    return area_table(tomllib.loads(path.read_text()), source=str(path))


def area_table(fields: Mapping[str, object], *, base: AreaTable | None = None, source: str = "area") -> AreaTable:
    """``base`` (default: a table made only of ``fields``) with ``fields`` replaced; unknown names are errors."""
    known = {f.name for f in dataclasses.fields(AreaTable)}
    problems = [unknown_field(name, sorted(known), prefix="area.") for name in sorted(set(fields) - known)]
    if base is None:
        problems += [f"area.{name} is missing" for name in sorted(known - set(fields))]
    given = {k: v for k, v in fields.items() if k in known}
    try:
        table = AreaTable(**given) if base is None else dataclasses.replace(base, **given)  # type: ignore[arg-type]
    except (ConfigError, TypeError) as exc:
        if not isinstance(exc, TypeError):  # a TypeError is a missing field, already listed
            problems += str(exc).split("; ")
        table = None
    if problems:
        raise ConfigError("; ".join(problems) if source == "area" else "; ".join(f"{source}: {p}" for p in problems))
    assert table is not None
    return table


def pe_area_um2(a_bits: int, b_bits: int, acc_bits: int, table: AreaTable) -> float:
    """One PE: multiplier, accumulator adder, operand + stationary + accumulator registers."""
    registers = a_bits + 2 * b_bits + acc_bits  # a in, b in, b held (stationary), accumulator
    return (table.multiplier_um2_per_bit2 * a_bits * b_bits + table.adder_um2_per_bit * acc_bits
            + table.register_um2_per_bit * registers)


def sparse_select_um2(n: int, m: int, a_bits: int, table: AreaTable) -> float:
    """The select logic one N:M sparse PE (``n`` multipliers over a group of ``m`` activations) adds."""
    index_bits = max(1, math.ceil(math.log2(m)))
    return (table.mux2_um2 * n * (m - 1) * a_bits
            + table.register_um2_per_bit * ((m - n) * a_bits + n * index_bits))


def sram_area_um2(memory: Memory, table: AreaTable) -> float:
    """Bits (cells with their share of decoders and wiring) plus, per bank, each word bit's column
    periphery, both grown by the share each port beyond the first adds (the model CACTI 7 was fitted to)."""
    ports = 1 + table.sram_extra_port_fraction * (memory.ports - 1)
    return ports * (table.sram_um2_per_bit * memory.size_bytes * 8
                    + table.sram_um2_per_bank_word_bit * memory.banks * memory.word_bytes * 8)


def area_mm2(arch: Accelerator, *, overrides: Mapping[str, object] | None = None) -> AreaBreakdown:
    """The area of ``arch`` by component (:class:`AreaBreakdown`), from its table (``arch.area``) with ``overrides``."""
    table = area_table(overrides, base=arch.area) if overrides else arch.area
    array = arch.array
    a, b, acc = array.input_format.bits, array.weight_format.bits, array.accumulator_format.bits
    lane = table.multiplier_um2_per_bit2 * acc * acc + table.adder_um2_per_bit * acc \
        + table.register_um2_per_bit * 3 * acc
    dma = arch.dma.channels * (table.dma_channel_register_bits * table.register_um2_per_bit
                               + table.dma_channel_adder_bits * table.adder_um2_per_bit)
    sparse = 0.0
    if array.sparsity:
        n, m = max(s.n for s in array.sparsity), max(s.m for s in array.sparsity)
        sparse = array.rows // n * array.cols * sparse_select_um2(n, m, a, table)
    um2 = 1e-6
    return AreaBreakdown(
        pe_array_mm2=array.rows * array.cols * pe_area_um2(a, b, acc, table) * um2,
        sparse_select_mm2=sparse * um2,
        scratchpad_mm2=sram_area_um2(arch.scratchpad, table) * um2,
        accumulator_mm2=sram_area_um2(arch.accumulator, table) * um2,
        vector_mm2=arch.vector.lanes * lane * um2,
        dma_mm2=dma * um2,
        control_mm2=table.control_register_bits * table.register_um2_per_bit * um2,
    )
