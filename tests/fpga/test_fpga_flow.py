"""FPGA flows: nextpnr report parsing, synthesis + place-and-route of a 2x2 tile, the report cache,
the resource model on held-out design points, board bitstreams and the ``accel fpga`` commands."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from accel.errors import AccelError, ConfigError, ToolError
from accel.resources import HELD_OUT_POINTS, estimate
from rtl.fpga import synth as fpga_synth
from rtl.fpga.nextpnr import parse_report
from rtl.fpga.synth import FpgaFamily, FpgaReport, synthesize_unit

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fpga"
TILE = {"rows": 2, "cols": 2, "dataflow": "ws"}


@pytest.mark.parametrize("family", ["ice40", "ecp5"])
def test_parser_reads_a_real_nextpnr_report_whatever_its_clock_is_called(family: str) -> None:
    path = FIXTURES / f"nextpnr_{family}_systolic_ws_2x2.json"
    raw = json.loads(path.read_text())
    report = parse_report(path)
    assert report.fmax_mhz == {clock: v["achieved"] for clock, v in raw["fmax"].items()}
    assert all(mhz > 0 for mhz in report.fmax_mhz.values())
    dsp = "ICESTORM_DSP" if family == "ice40" else "MULT18X18D"
    assert report.utilization[dsp] == (4, raw["utilization"][dsp]["available"])
    assert report.critical_paths and report.critical_paths[0].delay_ns > 0
    assert report.nets_timed == len(raw["detailed_net_timings"])
    assert parse_report(report.to_json() | {"fmax": raw["fmax"], "utilization": raw["utilization"]}).fmax == report.fmax


def test_parser_refuses_what_is_not_a_nextpnr_report() -> None:
    with pytest.raises(ToolError, match=r"^nextpnr report must have keys 'fmax' and 'utilization', missing fmax$"):
        parse_report({"utilization": {}})
    with pytest.raises(ToolError, match=r"^nextpnr report has no clock in 'fmax'"):
        parse_report({"fmax": {}, "utilization": {}})


@pytest.mark.fpga
@pytest.mark.parametrize("family", ["ice40", "ecp5"])
def test_a_2x2_tile_synthesizes_places_and_routes(family: str, tmp_path: Path) -> None:
    report = synthesize_unit("systolic", family=family, options=TILE, out_dir=tmp_path / "out",
                             cache_dir=tmp_path / "cache")
    # One hard multiplier per PE: SB_MAC16 with synth_ice40 -dsp, MULT18X18D on ECP5.
    assert report.resources.dsp == 4, dict(report.resources.cells)
    assert report.resources.luts >= report.resources.lut_primitives > 0 and report.resources.flip_flops >= 4 * 16
    assert report.fits and report.freq_mhz is None  # no target asked: no verdict either
    placed = "ICESTORM_LC" if family == "ice40" else "TRELLIS_COMB"
    # nextpnr places the harnessed unit: the unit's own LUTs plus about one per harnessed output bit.
    assert report.resources.luts < report.pnr.utilization[placed][0] <= report.resources.luts + 2 * sum(
        report.harness_bits) + 64, (report.resources, report.pnr.utilization)
    nextpnr = json.loads((tmp_path / "out" / f"harness_{family}_nextpnr.json").read_text())
    assert set(report.fmax_mhz) == set(nextpnr["fmax"]) and len(report.fmax_mhz) == 1
    assert all(mhz > 0 for mhz in report.fmax_mhz.values())
    written = json.loads((tmp_path / "out" / "report.json").read_text())
    assert written["fmax_mhz"] == report.fmax_mhz and written["resources"]["dsp"] == 4
    assert FpgaReport.from_json(written) == report
    summary = (tmp_path / "out" / "summary.txt").read_text()
    assert "Fmax" in summary and "target" not in summary


@pytest.mark.fpga
def test_a_cached_report_runs_no_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = synthesize_unit("systolic", family="xilinx", options=TILE, cache_dir=tmp_path)
    assert first.resources.dsp == 4 and first.pnr is None

    def no_tools(*args: object, **kwargs: object) -> None:
        raise AssertionError("a tool ran although the report was cached")

    monkeypatch.setattr(fpga_synth, "_run_tool", no_tools)
    again = synthesize_unit("systolic", family=FpgaFamily.XILINX, options=dict(TILE), cache_dir=tmp_path,
                            out_dir=tmp_path / "out")
    assert again == first and (tmp_path / "out" / "report.json").is_file()
    with pytest.raises(AssertionError, match="a tool ran"):  # another design point is not a hit
        synthesize_unit("systolic", family="xilinx", options=TILE | {"rows": 3}, cache_dir=tmp_path)


def test_bad_family_and_device_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"^FPGA family must be one of 'ice40', 'ecp5', 'xilinx', not 'xc9'$"):
        synthesize_unit("systolic", family="xc9")
    with pytest.raises(ConfigError, match=r"^ecp5 device must be one of '25k', '45k', '85k', not '12k'$"):
        synthesize_unit("systolic", family="ecp5", device="12k")


@pytest.mark.fpga
@pytest.mark.parametrize("family", ["ice40", "ecp5"])
@pytest.mark.parametrize("dataflow", ["ws", "os"])
@pytest.mark.parametrize(("rows", "cols"), HELD_OUT_POINTS)
def test_resource_model_predicts_held_out_points(family: str, dataflow: str, rows: int, cols: int,
                                                 tmp_path: Path) -> None:
    measured = synthesize_unit("systolic", family=family, options={"rows": rows, "cols": cols, "dataflow": dataflow},
                               place=False, cache_dir=tmp_path).resources
    predicted = estimate(rows, cols, dataflow=dataflow, family=family)
    assert predicted.dsp == measured.dsp
    assert abs(predicted.luts - measured.luts) <= 0.10 * measured.luts, (predicted, measured)
    assert abs(predicted.flip_flops - measured.flip_flops) <= 0.10 * measured.flip_flops, (predicted, measured)


def test_resource_model_refuses_what_it_was_not_fitted_on() -> None:
    with pytest.raises(ConfigError, match=r"^FPGA resource model covers .* not ice40/ws/int4/int8/int32$"):
        estimate(4, 4, family="ice40", a_format="int4")
    with pytest.raises(ConfigError, match=r"^Systolic array rows must be a positive integer, not 0$"):
        estimate(0, 4)
    assert estimate(4, 4, family="ecp5").dsp == 16 and estimate(2, 2).fmax_mhz > 0


def test_resource_model_says_whether_a_tile_fits_a_device() -> None:
    from accel import config
    from accel.resources import device, fits

    eight = estimate(8, 8, family="ecp5")
    assert eight.dsp == 64 and not eight.fits("25k") and eight.fits("45k") and eight.fits()
    assert eight.fit_problems(device("ecp5", "25k")) == ["64 DSPs (25k has 28)"]
    assert estimate(2, 2, family="ice40").fits("up5k") and not estimate(4, 4, family="ice40").fits("up5k")
    # LUTs as the device counts them: ECP5 carry cells are two LUT4s each, iCE40 logic cells hold the registers.
    assert eight.luts > eight.lut_primitives and estimate(8, 8, family="ice40").luts >= estimate(8, 8).flip_flops
    small = config.load("fpga-small").array
    assert fits(small, "25k") and not fits(small, "up5k") and not fits(config.load("gemmini"), "85k")
    with pytest.raises(ConfigError, match=r"^FPGA resource model covers .* not ecp5/os/int16/int16/int32$"):
        fits(config.load("eyeriss"), "85k")
    with pytest.raises(ConfigError, match=r"^FPGA device must be one of 'up5k', '25k', .*not 'xc9'$"):
        fits(small, "xc9")


@pytest.mark.fpga
@pytest.mark.parametrize(("board", "suffix"), [("icebreaker", ".bin"), ("versa-ecp5", ".bit")])
def test_board_bitstream_of_a_2x2_tile(board: str, suffix: str, tmp_path: Path) -> None:
    from rtl.fpga.board import build_bitstream

    done = build_bitstream(board, "systolic", options=TILE, build_dir=tmp_path)
    assert done.bitstream.suffix == suffix and done.bitstream.stat().st_size > 10_000
    # Utilisation of the board's device and Fmax, from nextpnr's report of this very build.
    assert done.pnr is not None and done.pnr.fmax_mhz and all(mhz > 0 for mhz in done.pnr.fmax_mhz.values())
    dsp = "ICESTORM_DSP" if board == "icebreaker" else "MULT18X18D"
    assert done.pnr.utilization[dsp][0] == 4
    summary = done.summary()
    assert summary.startswith(f"{done.module} for {board}: {done.bitstream}\n") and "  Fmax " in summary
    assert f"{dsp:<14}      4 / " in summary


@pytest.mark.skipif(shutil.which("dfu-suffix") is not None, reason="dfu-suffix is installed")
def test_a_board_needing_a_missing_programmer_names_it(tmp_path: Path) -> None:
    from rtl.fpga.board import build_bitstream

    with pytest.raises(ToolError, match=r"requires 'dfu-suffix' even to build.*dfu-util"):
        build_bitstream("orangecrab", "systolic", options=TILE, build_dir=tmp_path)


def _cli(argv: list[str]) -> argparse.Namespace:
    from accel.cli.fpga import register

    parser = argparse.ArgumentParser(prog="accel")
    register(parser.add_subparsers())
    return parser.parse_args(argv)


@pytest.mark.fpga
def test_cli_synth_prints_the_summary_and_writes_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCEL_FPGA_CACHE", str(tmp_path / "cache"))
    args = _cli(["fpga", "synth", "--family", "xilinx", "--design", "systolic", "--rows", "2", "--cols", "2",
                 "--out", str(tmp_path / "out")])
    assert args.handler(args) == 0
    assert "systolic_ws_2x2" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "report.json").read_text())["resources"]["dsp"] == 4


def test_cli_run_names_a_port_it_cannot_open(tmp_path) -> None:
    missing = tmp_path / "ttyNOPE"
    args = _cli(["fpga", "run", "--port", str(missing)])
    with pytest.raises(AccelError, match=rf"^(cannot open serial port '{missing}': .*|.*pip install pyserial)$"):
        args.handler(args)


@pytest.mark.fpga
def test_the_host_link_builds_for_a_board_with_a_uart(tmp_path) -> None:
    from rtl.fpga.board import build_bitstream

    done = build_bitstream("icebreaker", "host_link", options={"rows": 2, "cols": 2}, build_dir=tmp_path)
    assert done.module == "host_link_2x2" and done.bitstream.suffix == ".bin"
    assert done.bitstream.stat().st_size > 100_000  # a whole iCE40 UP5K image


def test_a_xilinx_board_gets_its_vivado_project_without_vivado(tmp_path, capsys) -> None:
    args = _cli(["fpga", "build", "--board", "arty-a7", "--design", "host_link", "--rows", "2", "--cols", "2",
                 "--script-only", "--out", str(tmp_path)])
    assert args.handler(args) == 0
    script = (tmp_path / "host_link_2x2.tcl").read_text()
    for step in ("synth_design -top host_link_2x2", "place_design", "route_design", "report_utilization",
                 "report_timing_summary", "write_bitstream"):
        assert step in script, step
    assert (tmp_path / "host_link_2x2.xdc").is_file() and (tmp_path / "build_host_link_2x2.sh").is_file()
    assert "wrote" in capsys.readouterr().out


def test_building_a_xilinx_board_without_vivado_says_so(tmp_path, monkeypatch) -> None:
    from rtl.fpga import board

    monkeypatch.setattr(board, "_have", lambda tool: False)
    args = _cli(["fpga", "build", "--board", "nexys4ddr", "--design", "host_link", "--out", str(tmp_path)])
    with pytest.raises(AccelError, match=r"^board 'nexys4ddr' builds with Vivado, which is not on the PATH; "):
        args.handler(args)
    assert (tmp_path / "host_link_2x2.tcl").is_file()


@pytest.mark.fpga
def test_the_npu_board_top_is_the_npu_behind_the_uart(tmp_path) -> None:
    """``--design npu`` on a board is NPULink (UART, DRAM model, NPU) on the board's UART pins; a small
    scratchpad keeps the Verilog quick to write (Vivado's project: no tool runs)."""
    import dataclasses

    from accel.config import load
    from rtl.fpga.board import write_vivado_project

    arch = load("fpga-small")
    arch = dataclasses.replace(arch, scratchpad=dataclasses.replace(arch.scratchpad, size_bytes=1024))
    write_vivado_project("arty-a7", "npu", options={"arch": arch, "max_commands": 8, "program_words": 256,
                                                    "dram_bytes": 1024}, build_dir=tmp_path)
    verilog = (tmp_path / "npu_link.v").read_text()
    assert "module npu_link(rst_0__io, uart_0__rx__io, uart_0__tx__io, clk100_0__io);" in verilog
    assert "module \\npu_link.link.npu " in verilog
    for lane in range(4):  # the DRAM model's byte lanes, 1024 / 4 bytes each
        assert f"reg [7:0] dram_{lane} [255:0];" in verilog
    assert "synth_design -top npu_link" in (tmp_path / "npu_link.tcl").read_text()
    with pytest.raises(ConfigError, match=r"unit 'npu' on a board takes options .*, not rows"):
        write_vivado_project("arty-a7", "npu", options={"rows": 2}, build_dir=tmp_path / "bad")


def test_the_npu_board_top_defaults_to_the_pll_on_ecp5_only() -> None:
    """Without ``clock_mhz`` the NPU link runs from the PLL at NPU_ECP5_CLOCK_MHZ on ECP5 boards (it does
    not meet their 25 MHz) and from the board's clock elsewhere; a given clock is kept."""
    from rtl.fpga.board import NPU_ECP5_CLOCK_MHZ, _npu_clock_mhz

    assert _npu_clock_mhz(None, "ecp5") == NPU_ECP5_CLOCK_MHZ == 10.0
    assert _npu_clock_mhz(None, "xilinx") is None
    assert _npu_clock_mhz(15.0, "ecp5") == 15.0


def test_the_ecp5_pll_dividers_are_ecpplls() -> None:
    """The dividers prjtrellis' ecppll prints for 25 MHz in (the ULX3S's clock)."""
    from rtl.fpga.pll import ecp5_pll_params

    for out_mhz, (clki, clkfb, clkop) in ((15, (5, 3, 40)), (12.5, (2, 1, 48)), (20, (5, 4, 30))):
        p = ecp5_pll_params(25, out_mhz)
        assert (p.clki_div, p.clkfb_div, p.clkop_div) == (clki, clkfb, clkop)
        assert p.output_mhz == pytest.approx(out_mhz) and p.vco_mhz == pytest.approx(600)
    with pytest.raises(ConfigError, match=r"^An ECP5 PLL cannot make 0.001 MHz from 25 MHz \(closest: "):
        ecp5_pll_params(25, 0.001)


def test_the_npu_board_top_runs_from_the_pll_at_clock_mhz(tmp_path) -> None:
    """``clock_mhz`` on an ECP5 board: the NPU link's ``sync`` domain is an EHXPLLL's output (nextpnr
    derives its constraint from the board clock's and the dividers; no tool runs here); a Xilinx
    board refuses it."""
    import dataclasses

    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    from accel.config import load
    from rtl.fpga.board import _top, write_vivado_project

    arch = load("fpga-small")
    arch = dataclasses.replace(arch, scratchpad=dataclasses.replace(arch.scratchpad, size_bytes=1024))
    options = {"arch": arch, "max_commands": 8, "program_words": 256, "dram_bytes": 1024, "clock_mhz": 15}
    ULX3S_85F_Platform().build(_top("npu", options), name="npu_link", do_build=False).extract(str(tmp_path))
    assert 'FREQUENCY PORT "clk25_0__io" 25000000.0 HZ;' in (tmp_path / "npu_link.lpf").read_text()
    netlist = (tmp_path / "npu_link.il").read_text()
    assert "cell \\EHXPLLL \\pll" in netlist
    for parameter in ("CLKI_DIV 5", "CLKFB_DIV 3", "CLKOP_DIV 40"):
        assert f"parameter \\{parameter}\n" in netlist
    with pytest.raises(ConfigError, match=r"^unit 'npu' takes clock_mhz only on ECP5 boards \(their PLL\), "
                                          r"not on LatticeICE40Platform|^unit 'npu' takes clock_mhz only"):
        write_vivado_project("arty-a7", "npu", options=options, build_dir=tmp_path / "xilinx")
