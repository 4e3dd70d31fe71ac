"""Out-of-context synthesis of the MAC PE with yosys (YoWASP) for iCE40 and ECP5."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from accel.errors import ConfigError, ToolError
from rtl.pe import MacPE
from rtl.synth import Family, ResourceReport, find_yosys, synthesize


@pytest.mark.fpga
def test_pe_on_ice40_uses_a_mac16_and_keeps_its_registers(tmp_path: Path) -> None:
    report = synthesize(MacPE(), family="ice40", name="mac_pe", out_dir=tmp_path)
    assert report.family is Family.ICE40 and report.top == "mac_pe"
    assert report.cells.get("SB_MAC16", 0) >= 1 and report.dsp == 1, dict(report.cells)
    assert report.flip_flops >= 32, dict(report.cells)  # at least the accumulator
    assert 0 < report.luts < 400 and report.carry > 0 and report.bram == 0, dict(report.cells)
    assert report.total_cells == sum(report.cells.values())
    assert report.netlist == tmp_path / "mac_pe_ice40.json"
    assert "modules" in json.loads(report.netlist.read_text())  # what nextpnr will read


@pytest.mark.fpga
def test_pe_on_ecp5_uses_a_multiplier_and_keeps_its_registers() -> None:
    report = synthesize(MacPE(), family=Family.ECP5, name="mac_pe")
    multipliers = report.cells.get("MULT18X18D", 0)
    assert multipliers >= 1 or report.luts > 64, dict(report.cells)  # a DSP or a LUT multiplier
    assert report.flip_flops >= 32 and report.carry > 0, dict(report.cells)
    assert report.netlist is None  # nothing kept without out_dir
    assert report.to_row()["family"] == "ecp5"


def test_resource_totals_come_from_the_cell_table() -> None:
    report = ResourceReport(Family.ECP5, "x", {"LUT4": 10, "TRELLIS_FF": 4, "CCU2C": 2, "MULT18X18D": 1,
                                               "DP16KD": 3, "PFUMX": 5})
    assert (report.luts, report.flip_flops, report.carry, report.dsp, report.bram, report.other) == (10, 4, 2, 1, 3, 5)
    assert list(report.cells) == sorted(report.cells)


def test_bad_family_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^FPGA family must be one of 'ice40', 'ecp5', not 'xc7'$"):
        Family.parse("xc7")


def test_a_yosys_that_does_not_exist_is_a_tool_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YOSYS", "/nonexistent/yosys")
    with pytest.raises(ToolError, match=r"^YOSYS is set to '/nonexistent/yosys', which is not an executable"):
        find_yosys()
