"""``accel info``: print a hardware description (a preset or a TOML file) as text, TOML or JSON, or list the presets."""

from __future__ import annotations

import argparse
import json
from typing import Any

from accel import config
from accel.cli._output import format_bytes
from accel.hardware import Accelerator

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``info`` command to ``subparsers``."""
    from accel.cli import epilog

    info = subparsers.add_parser("info", help="print a hardware description",
                          description="Print an accelerator: a preset name or a TOML file.", epilog=epilog())
    info.add_argument("arch", nargs="?", help="preset name or path to a TOML file (omit to list the presets)")
    shape = info.add_mutually_exclusive_group()
    shape.add_argument("--toml", action="store_true", help="print it as TOML (a file you can edit and load)")
    shape.add_argument("--json", action="store_true", help="print it as JSON")
    info.set_defaults(handler=_info)


def _info(args: argparse.Namespace) -> int:
    if args.arch is None:
        for name in config.preset_names():
            print(f"{name:12s} {config.load(name).description}")
        return 0
    arch = config.load(args.arch)
    if args.toml:
        print(config.dumps(arch), end="")
    elif args.json:
        print(json.dumps(config.to_dict(arch), indent=2))
    else:
        print(_describe(arch))
    return 0


def _describe(arch: Accelerator) -> str:
    a = arch.array
    lines = [
        f"{arch.name}: {arch.description}" if arch.description else arch.name,
        f"  clock          {arch.clock_hz / 1e6:g} MHz",
        f"  array          {a.rows} x {a.cols} PEs, dataflows {', '.join(d.value for d in a.dataflows)}",
        f"  formats        inputs {a.input_format}, weights {a.weight_format}, accumulators "
        f"{a.accumulator_format} ({a.accumulator_format.overflow.value})",
        f"  sparsity       {', '.join(map(str, a.sparsity)) or 'dense only'}",
        f"  peak           {arch.peak_macs_per_s / 1e9:g} GMAC/s ({arch.peak_macs_per_cycle} MAC/cycle)",
        f"  vector unit    {arch.vector.lanes} lanes, {arch.vector.latency_cycles} cycles latency",
    ]
    for name in ("scratchpad", "accumulator"):
        mem = getattr(arch, name)
        lines.append(f"  {name:14s} {format_bytes(mem.size_bytes)}, {mem.banks} banks x {mem.ports} ports x "
                     f"{mem.word_bytes} B words")
    lines += [
        f"  dma            {arch.dma.channels} channel(s) x {arch.dma.bandwidth_bytes_per_cycle:g} B/cycle, "
        f"{arch.dma.latency_cycles} cycles setup, {arch.dma.burst_bytes} B bursts",
        f"  dram           {arch.dram.bandwidth_bytes_per_cycle:g} B/cycle "
        f"({arch.dram.bandwidth_bytes_per_cycle * arch.clock_hz / 1e9:g} GB/s), "
        f"{arch.dram.latency_cycles} cycles latency, {arch.dram.energy_pj_per_byte:g} pJ/B",
    ]
    from accel.area import area_mm2

    area = area_mm2(arch)
    select = f" + N:M select {area.sparse_select_mm2:.3g}" if area.sparse_select_mm2 else ""
    lines.append(f"  area (45 nm)   {area.total_mm2:.3g} mm2: PE array {area.pe_array_mm2:.3g}{select}, scratchpad "
                 f"{area.scratchpad_mm2:.3g}, accumulator {area.accumulator_mm2:.3g}, vector {area.vector_mm2:.3g}, "
                 f"DMA and control {area.dma_mm2 + area.control_mm2:.3g}")
    return "\n".join(lines)

