"""Vivado report parsing (real reports from public repositories, tests/fixtures/vivado/README.md) and
``accel fpga report``. No tool runs: these are plain-text tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from accel.cli import main
from accel.errors import ToolError
from rtl.fpga.nextpnr import PnrReport
from rtl.fpga.vivado import (
    ClockTiming,
    parse_timing,
    parse_utilization,
    read_timing,
    read_utilization,
    report_json,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "vivado"
DIGIDRUM_UTIL = FIXTURES / "digidrum3000_post_place_util.rpt"
DIGIDRUM_TIMING = FIXTURES / "digidrum3000_post_route_timing_summary.rpt"
ROSEBUD_UTIL = FIXTURES / "rosebud_kcu_fpga_utilization_placed.rpt"
ROSEBUD_TIMING = FIXTURES / "rosebud_kcu_fpga_timing_summary_routed.rpt"
LDPC_UTIL = FIXTURES / "ldpc_sume_fpga_utilization_placed.rpt"

# Read off each file by eye: (device, design, LUTs, registers, DSPs, RAMB36, RAMB18, BRAM tiles, carry).
UTILIZATION = {
    # Vivado 2025.1, Spartan-7, 'Fixed' and 'Prohibited' columns; CARRY4 only in the Primitives table.
    DIGIDRUM_UTIL: ("xc7s50csga324-1", "top_level", 68, 131, 0, 0, 0, 0.0, 16),
    # Vivado 2018.3, Kintex UltraScale: 'CLB Logic', 'BLOCKRAM', 'ARITHMETIC', no 'Prohibited' column.
    ROSEBUD_UTIL: ("xcku035fbva676-2", "fpga", 44971, 39186, 0, 412, 8, 416.0, 559),
    # Vivado 2018.2, Virtex-7, no 'Prohibited' column; Block RAM Tile 1016 = 20 + 1992 / 2.
    LDPC_UTIL: ("7vx690tffg1761-3", "fpga", 65471, 75723, 0, 20, 1992, 1016.0, 1172),
}


@pytest.mark.parametrize("path", list(UTILIZATION), ids=lambda p: p.stem)
def test_every_utilization_fixture_reads_as_read_by_eye(path: Path) -> None:
    device, design, luts, ffs, dsp, ramb36, ramb18, tiles, carry = UTILIZATION[path]
    report = read_utilization(path)
    assert (report.device, report.design, report.luts, report.flip_flops, report.dsp, report.ramb36,
            report.ramb18, report.bram_tiles, report.carry) == (device, design, luts, ffs, dsp, ramb36, ramb18,
                                                                 tiles, carry)
    assert report.source == str(path) and report.tool_version.startswith("Vivado v.20")
    assert report.command.startswith("report_utilization -file")


def test_utilization_keeps_the_available_column_and_the_primitives_table() -> None:
    rosebud = read_utilization(ROSEBUD_UTIL)
    assert dict(rosebud.available) == {"CLB LUTs": 203128, "CLB Registers": 406256, "CARRY8": 30300,
                                       "RAMB36/FIFO": 540, "RAMB18": 1080, "Block RAM Tile": 540, "DSPs": 1700}
    assert rosebud.cells["RAMB36E2"] == 412 and rosebud.cells["RAMB18E2"] == 8 and len(rosebud.cells) == 32
    digidrum = read_utilization(DIGIDRUM_UTIL)
    assert dict(digidrum.cells) == {"FDRE": 117, "LUT4": 22, "LUT5": 20, "OBUF": 18, "LUT3": 18, "OBUFT": 16,
                                    "LUT6": 16, "CARRY4": 16, "FDSE": 14, "LUT2": 9, "IBUF": 5, "LUT1": 4, "BUFG": 1}
    assert digidrum.other_cells == 18 + 16 + 5 + 1  # OBUF, OBUFT, IBUF, BUFG
    assert digidrum.available["Slice LUTs"] == 32600 and digidrum.available["DSPs"] == 120


def test_a_single_clock_timing_summary() -> None:
    timing = read_timing(DIGIDRUM_TIMING)
    assert timing.device == "7s50-csga324" and timing.design == "top_level" and timing.constraints_met is True
    assert dict(timing.summary) == {
        "WNS(ns)": 4.377, "TNS(ns)": 0.0, "TNS Failing Endpoints": 0, "TNS Total Endpoints": 277,
        "WHS(ns)": 0.186, "THS(ns)": 0.0, "THS Failing Endpoints": 0, "THS Total Endpoints": 277,
        "WPWS(ns)": 3.5, "TPWS(ns)": 0.0, "TPWS Failing Endpoints": 0, "TPWS Total Endpoints": 132}
    assert timing.clocks == (ClockTiming("gclk", 10.0, 100.0, (0.0, 4.0), 4.377, 0.186),)
    # Fmax = 1000 / (period - WNS) = 1000 / (10 - 4.377) ns.
    assert timing.fmax_mhz == {"gclk": pytest.approx(1000 / 5.623)}
    assert timing.fmax_mhz["gclk"] == pytest.approx(177.841, abs=1e-3)


def test_a_multi_clock_timing_summary_with_generated_and_untimed_clocks() -> None:
    timing = read_timing(ROSEBUD_TIMING)
    assert timing.device == "xcku035-fbva676" and timing.wns_ns == 0.038 and timing.whs_ns == 0.004
    assert timing.summary["TNS Total Endpoints"] == 117205 and timing.summary["TPWS Total Endpoints"] == 47416
    by_name = {c.clock: c for c in timing.clocks}
    assert list(by_name) == [
        "clk_100mhz", "clk_125mhz_mmcm_out", "clk_200mhzmhz_mmcm_out",
        "dbg_hub/inst/BSCANID.u_xsdbm_id/SWITCH_N_EXT_BSCAN.bscan_inst/SERIES7_BSCAN.bscan_inst/TCK",
        "sfp_mgt_refclk", "qpll0outclk_out[0]", "rxoutclk_out[0]", "gt_rxusrclk2_0", "rxoutclk_out[1]",
        "gt_rxusrclk2_1", "txoutclk_out[0]", "clk_156mhz_int", "qpll0outrefclk_out[0]"]
    # Clocks with only pulse-width checks have blank WNS/WHS cells, and no Fmax.
    assert by_name["clk_100mhz"] == ClockTiming("clk_100mhz", 10.0, 100.0, (0.0, 5.0), None, None)
    assert by_name["rxoutclk_out[0]"].wns_ns is None and by_name["sfp_mgt_refclk"].met is None
    assert by_name["clk_200mhzmhz_mmcm_out"] == ClockTiming("clk_200mhzmhz_mmcm_out", 5.0, 200.0, (0.0, 2.5), 0.038,
                                                            0.031)
    assert by_name["clk_156mhz_int"].frequency_mhz == 156.252 and by_name["clk_156mhz_int"].wns_ns == 0.272
    tck = by_name["dbg_hub/inst/BSCANID.u_xsdbm_id/SWITCH_N_EXT_BSCAN.bscan_inst/SERIES7_BSCAN.bscan_inst/TCK"]
    assert (tck.period_ns, tck.wns_ns, tck.whs_ns, tck.waveform_ns) == (33.0, 30.075, 0.031, (0.0, 16.5))
    assert timing.fmax_mhz == pytest.approx({
        "clk_125mhz_mmcm_out": 1000 / (8.0 - 5.995), "clk_200mhzmhz_mmcm_out": 1000 / (5.0 - 0.038),
        tck.clock: 1000 / (33.0 - 30.075), "gt_rxusrclk2_0": 1000 / (6.4 - 1.513),
        "gt_rxusrclk2_1": 1000 / (6.4 - 2.067), "clk_156mhz_int": 1000 / (6.4 - 0.272)})


def test_fmax_is_one_over_the_period_less_the_slack() -> None:
    assert ClockTiming("c", 10.0, 100.0, (0.0, 5.0), -2.5, 0.1).fmax_mhz == pytest.approx(80.0)
    assert ClockTiming("c", 10.0, 100.0, (0.0, 5.0), -2.5, 0.1).met is False
    assert ClockTiming("c", 4.0, 250.0, (0.0, 2.0), 0.0, None).fmax_mhz == pytest.approx(250.0)


def test_a_timing_report_is_not_a_utilization_report_and_vice_versa() -> None:
    with pytest.raises(ToolError, match=r"^x\.rpt: no 'Slice Logic' or 'CLB Logic' table found; "
                                        r"is this the output of report_utilization\?$"):
        parse_utilization(DIGIDRUM_TIMING.read_text(), source="x.rpt")
    with pytest.raises(ToolError, match=r"^y\.rpt: no 'Design Timing Summary' table found; "
                                        r"is this the output of report_timing_summary\?$"):
        parse_timing(ROSEBUD_UTIL.read_text(), source="y.rpt")
    with pytest.raises(ToolError, match=r"^empty\.rpt: no 'Slice Logic' or 'CLB Logic' table found"):
        parse_utilization("", source="empty.rpt")


def test_truncated_reports_name_every_missing_table() -> None:
    text = LDPC_UTIL.read_text()
    with pytest.raises(ToolError, match=r"^cut\.rpt: no 'Memory' or 'BLOCKRAM' table found; "
                                        r"no 'DSP' or 'ARITHMETIC' table found$"):
        parse_utilization(text[:text.index("3. Memory\n---")], source="cut.rpt")
    timing = DIGIDRUM_TIMING.read_text()
    with pytest.raises(ToolError, match=r"^cut\.rpt: no 'Intra Clock Table' table found$"):
        parse_timing(timing[:timing.index("| Intra Clock Table")], source="cut.rpt")
    with pytest.raises(ToolError, match=r"^cut\.rpt: no 'Clock Summary' table found; "
                                        r"no 'Intra Clock Table' table found$"):
        parse_timing(timing[:timing.index("| Clock Summary")], source="cut.rpt")


def test_a_damaged_cell_is_named() -> None:
    text = ROSEBUD_UTIL.read_text().replace("| CLB LUTs                   | 44971 |",
                                            "| CLB LUTs                   | 449x1 |")
    with pytest.raises(ToolError, match=r"^bad\.rpt: 'CLB LUTs' Used must be an integer, not '449x1'$"):
        parse_utilization(text, source="bad.rpt")
    timing = DIGIDRUM_TIMING.read_text().replace("gclk   {0.000 4.000}      10.000 ",
                                                 "gclk   {0.000 4.000}      1O.000 ")
    with pytest.raises(ToolError, match=r"^bad\.rpt: clock gclk period must be a number, not '1O\.000'$"):
        parse_timing(timing, source="bad.rpt")


def test_report_json_has_the_shape_of_fpga_synth_report_json() -> None:
    from rtl.fpga.synth import FpgaFamily, FpgaReport, Resources

    data = report_json(read_utilization(ROSEBUD_UTIL), read_timing(ROSEBUD_TIMING))
    synth = FpgaReport("systolic", {}, "m", FpgaFamily.XILINX, "xc7", "", None,
                       Resources(1, 1, 1, 0, 0, 0, 0, {}), None, "x", (0, 0), {}, "k").to_json()
    assert set(synth) <= set(data) and set(synth["resources"]) == set(data["resources"])
    assert data["resources"] | {"cells": None} == {"luts": 44971, "lut_primitives": 44971, "flip_flops": 39186,
                                                   "carry": 559, "dsp": 0,
                                                   "bram": 416, "other": 8326, "cells": None}
    assert data["family"] == "xilinx" and data["device"] == "xcku035fbva676-2" and data["unit"] == "fpga"
    assert data["fmax_mhz"] == read_timing(ROSEBUD_TIMING).fmax_mhz and len(data["fmax_mhz"]) == 6
    pnr = PnrReport.from_json(data["pnr"])  # the nextpnr report's JSON shape
    assert pnr.fmax_mhz == data["fmax_mhz"] and pnr.utilization["CLB LUTs"] == (44971, 203128)
    assert {c.clock: c.constraint_mhz for c in pnr.fmax}["clk_156mhz_int"] == 156.252
    assert json.loads(json.dumps(data)) == data
    alone = report_json(read_utilization(LDPC_UTIL))
    assert alone["fmax_mhz"] == {} and alone["pnr"] is None and alone["resources"]["bram"] == 1016


def test_cli_report_prints_and_writes_report_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["fpga", "report", "--utilization", str(DIGIDRUM_UTIL), "--timing", str(DIGIDRUM_TIMING),
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "LUTs              68" in printed and "Fmax   177.84 MHz on gclk" in printed
    written = json.loads((out / "report.json").read_text())
    assert written == report_json(read_utilization(DIGIDRUM_UTIL), read_timing(DIGIDRUM_TIMING))
    assert sorted(p.name for p in out.iterdir()) == ["report.json"]


def test_a_nan_slack_is_no_number_and_no_verdict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Vivado writes NaN slacks (and still "All user specified timing constraints are met.") when
    # no setup path was timed; report.json must stay valid JSON and claim nothing.
    text = DIGIDRUM_TIMING.read_text().replace("      4.377        0.000   ", "        NaN        0.000   ")
    text = text.replace("gclk                4.377", "gclk                  NaN")
    assert text.count("NaN") == 2
    nan_report = tmp_path / "nan_timing.rpt"
    nan_report.write_text(text)
    timing = read_timing(nan_report)
    assert timing.wns_ns is None and timing.constraints_met is None and timing.fmax_mhz == {}
    out = tmp_path / "out"
    assert main(["fpga", "report", "--utilization", str(DIGIDRUM_UTIL), "--timing", str(nan_report),
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "constraints not checked: no setup path was timed" in printed and "constraints met" not in printed
    raw = (out / "report.json").read_text()
    assert "NaN" not in raw
    written = json.loads(raw)
    assert written["vivado"]["timing"]["summary"]["WNS(ns)"] is None
    assert written["vivado"]["timing"]["constraints_met"] is None and written["fmax_mhz"] == {}


def test_cli_report_of_a_bad_file_exits_2_and_writes_nothing(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["fpga", "report", "--utilization", str(DIGIDRUM_UTIL), "--timing", str(DIGIDRUM_UTIL),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == (f"accel: error: {DIGIDRUM_UTIL}: no 'Design Timing Summary' table found; "
                   "is this the output of report_timing_summary?\n")
    assert not out.exists()
    missing = tmp_path / "nope.rpt"
    assert main(["fpga", "report", "--utilization", str(missing), "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith(f"accel: error: {missing}: cannot be read as the text of "
                                              "report_utilization: ")
    assert not out.exists()


def test_a_vivado_script_only_build_points_at_accel_fpga_report(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fpga", "build", "--board", "arty-a7", "--design", "systolic", "--rows", "2", "--cols", "2",
                 "--script-only", "--out", str(tmp_path)]) == 0
    script = (tmp_path / "systolic_ws_2x2.tcl").read_text()
    utilization, timing = "systolic_ws_2x2_utilization_place.rpt", "systolic_ws_2x2_timing.rpt"
    assert f"report_utilization -file {utilization}" in script and f"-file {timing}" in script
    assert (f"accel fpga report --utilization {tmp_path / utilization} --timing {tmp_path / timing} "
            f"--out {tmp_path}") in capsys.readouterr().out
