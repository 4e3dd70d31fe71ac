"""The RTL units the command line can generate, by name.

``UNITS[name](**options)`` builds a :class:`Unit`: the Amaranth component, the parameters for its
manifest and its latency in cycles. :func:`build_unit` checks the name and the options, and
:func:`generate_unit` writes ``<out>/<module>.v`` plus its JSON manifest (:func:`rtl.verilog.write`)::

    generate_unit("systolic", "build/", rows=8, cols=8, dataflow="ws")   # build/systolic_ws_8x8.v

Options (all keyword, formats as text such as ``"int8"``; ``overflow`` is ``"wrap"`` or
``"saturate"`` and applies to the accumulator):

=========  =========================================================================
``pe``        ``a_format``, ``b_format``, ``acc_format``, ``overflow``
``systolic``  ``rows``, ``cols``, ``dataflow`` (``ws``/``os``), ``a_format``, ``b_format``,
              ``acc_format``, ``overflow``
``requant``   ``out_format``, ``mode`` (``double``/``single``), ``lanes``
``nm_compressor``    ``n``, ``m``, ``value_format``, ``lanes``
``sparse_systolic``  ``rows``, ``cols``, ``n``, ``m``, ``a_format``, ``b_format``, ``acc_format``,
                     ``overflow`` (an N:M weight-stationary tile with a runtime dense mode)
``npu``       ``arch`` (a preset name, TOML path or :class:`~accel.hardware.Accelerator`), ``max_commands``,
              ``program_words``, ``requant_channels``: the whole accelerator that runs command programs
              (:mod:`rtl.npu`)
=========  =========================================================================
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amaranth.lib import wiring

from accel.errors import ConfigError
from accel.formats import INT8, INT32, NumberFormat, Overflow
from accel.hardware import Accelerator
from rtl.nm_compressor import NMCompressor
from rtl.pe import MacPE
from rtl.requant import Requantizer
from rtl.sparse_systolic import SparseSystolicArray
from rtl.systolic import SystolicArray
from rtl.verilog import write

__all__ = ["Unit", "UNITS", "MAX_PES", "build_unit", "generate_unit"]

MAX_PES = 4096
"""The most processing elements a tile request may imply (64 x 64). Elaboration and Verilog
generation take time and memory in proportion to the PEs (a 16 x 16 tile's RTLIL is about 1 MB and
4 s to elaborate); beyond this bound a request is refused before anything is built, instead of
running for hours (a 4096 x 4096 tile is 16.7 million PEs)."""


def _check_pes(unit: str, rows: object, cols: object) -> None:
    if isinstance(rows, int) and isinstance(cols, int) and rows > 0 and cols > 0 and rows * cols > MAX_PES:
        raise ConfigError(f"RTL unit {unit!r} of {rows}x{cols} = {rows * cols} PEs is more than the {MAX_PES} "
                          f"(64x64) a tile may have here; generate a smaller tile")


@dataclass(frozen=True)
class Unit:
    """A built RTL unit: the component, its manifest parameters, its default module name, its latency."""

    component: wiring.Component
    parameters: Mapping[str, Any] = field(hash=False)
    module: str
    latency: int


def _format(name: str, text: str | NumberFormat, overflow: str | None = None) -> NumberFormat:
    if isinstance(text, NumberFormat) and overflow is None:
        return text
    try:
        mode = Overflow(overflow) if overflow is not None else Overflow.WRAP
    except ValueError:
        raise ConfigError(f"overflow must be 'wrap' or 'saturate', not {overflow!r}") from None
    base = text if isinstance(text, NumberFormat) else NumberFormat.parse(str(text))
    return NumberFormat(base.bits, base.signed, base.frac_bits, base.rounding, mode) if name == "acc" else base


def _pe(*, a_format: str | NumberFormat = INT8, b_format: str | NumberFormat = INT8,
        acc_format: str | NumberFormat = INT32, overflow: str | None = None) -> Unit:
    pe = MacPE(a_format=_format("a", a_format), b_format=_format("b", b_format),
               acc_format=_format("acc", acc_format, overflow))
    return Unit(pe, pe.parameters, "mac_pe", pe.latency)


def _systolic(*, rows: int = 4, cols: int = 4, dataflow: str = "ws", a_format: str | NumberFormat = INT8,
              b_format: str | NumberFormat = INT8, acc_format: str | NumberFormat = INT32,
              overflow: str | None = None, weight_buffers: int = 1) -> Unit:
    _check_pes("systolic", rows, cols)
    array = SystolicArray(rows, cols, dataflow, a_format=_format("a", a_format), b_format=_format("b", b_format),
                          acc_format=_format("acc", acc_format, overflow), weight_buffers=weight_buffers)
    suffix = "" if weight_buffers == 1 else f"_wb{weight_buffers}"
    return Unit(array, array.parameters, f"systolic_{array.dataflow.value}_{rows}x{cols}{suffix}", array.latency)


def _requant(*, out_format: str | NumberFormat = INT8, mode: str = "double", lanes: int = 1) -> Unit:
    unit = Requantizer(out_format=_format("out", out_format), mode=mode, lanes=lanes)
    return Unit(unit, unit.parameters, f"requant_{mode}", unit.latency)


def _nm_compressor(*, n: int = 2, m: int = 4, value_format: str | NumberFormat = INT8, lanes: int = 1) -> Unit:
    unit = NMCompressor(n, m, value_format=_format("value", value_format), lanes=lanes)
    return Unit(unit, unit.parameters, f"nm_compressor_{n}_{m}", unit.latency)


def _sparse_systolic(*, rows: int = 4, cols: int = 4, n: int = 2, m: int = 4, a_format: str | NumberFormat = INT8,
                     b_format: str | NumberFormat = INT8, acc_format: str | NumberFormat = INT32,
                     overflow: str | None = None) -> Unit:
    _check_pes("sparse_systolic", rows, cols)
    array = SparseSystolicArray(rows, cols, n, m, a_format=_format("a", a_format), b_format=_format("b", b_format),
                                acc_format=_format("acc", acc_format, overflow))
    return Unit(array, array.parameters, f"sparse_systolic_{n}_{m}_{rows}x{cols}", array.latency)


def _npu(*, arch: str | Accelerator = "fpga-small", max_commands: int = 256, program_words: int = 8192,
         requant_channels: int = 32) -> Unit:
    from accel.config import load
    from rtl.npu import NPU

    design = None if isinstance(arch, Accelerator) else str(arch)  # errors name the file, not its `name`
    npu = NPU(arch if isinstance(arch, Accelerator) else load(arch), max_commands=max_commands,
              program_words=program_words, requant_channels=requant_channels, design=design)
    return Unit(npu, npu.parameters, "npu", 0)  # latency: a program's cycles are its trace, not one figure


UNITS: dict[str, Callable[..., Unit]] = {"pe": _pe, "systolic": _systolic, "requant": _requant,
                                         "nm_compressor": _nm_compressor, "sparse_systolic": _sparse_systolic,
                                         "npu": _npu}
"""Builders by unit name; each takes keyword options only and returns a :class:`Unit`."""


def build_unit(name: str, **options: Any) -> Unit:
    """``UNITS[name](**options)`` with :class:`ConfigError` for an unknown unit or option."""
    if name not in UNITS:
        raise ConfigError(f"RTL unit must be one of {', '.join(sorted(UNITS))}, not {name!r}")
    builder = UNITS[name]
    known = [p for p in inspect.signature(builder).parameters]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(f"RTL unit {name!r} takes options {', '.join(known)}, not {', '.join(unknown)}")
    return builder(**options)


def generate_unit(name: str, out_dir: Path | str, *, module: str | None = None, **options: Any) -> Path:
    """Build unit ``name`` with ``options`` and write its Verilog and manifest; return the ``.v`` path."""
    unit = build_unit(name, **options)
    return write(unit.component, module or unit.module, out_dir, parameters=unit.parameters, latency=unit.latency)
