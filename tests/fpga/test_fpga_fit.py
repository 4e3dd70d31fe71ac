"""Requests that cannot fit are refused before any tool runs: one ``accel: error:`` line, exit 2, in seconds.

None of these runs yosys or nextpnr: the cells a request implies (PEs, hard multipliers) are
bounded from the request and the elaborated design alone (issue 14's fuzz hangs, issue 19's exit code).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from accel.cli import main
from accel.resources import DEVICES, FpgaFamily
from rtl.fpga.board import BOARDS
from rtl.fpga.nextpnr import ClockFmax, PnrReport
from rtl.fpga.synth import FpgaReport, Resources


def test_a_huge_tile_is_refused_before_it_is_elaborated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    start = time.monotonic()
    assert main(["rtl", "generate", "systolic", "--rows", "4096", "--cols", "4096", "--out", str(tmp_path)]) == 2
    assert time.monotonic() - start < 5
    assert capsys.readouterr().err == ("accel: error: RTL unit 'systolic' of 4096x4096 = 16777216 PEs is more than "
                                       "the 4096 (64x64) a tile may have here; generate a smaller tile\n")
    assert not list(tmp_path.iterdir())


def test_a_16x16_tile_on_icebreaker_is_refused_before_place_and_route(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fpga", "build", "--board", "icebreaker", "--design", "systolic", "--rows", "16", "--cols", "16",
                 "--out", str(tmp_path / "build")]) == 2
    assert capsys.readouterr().err == ("accel: error: systolic_ws_16x16 does not fit board 'icebreaker' "
                                       "(ice40 up5k): it needs 256 DSPs (up5k has 8); nothing was built\n")
    assert not (tmp_path / "build").exists()


def test_synth_exits_2_when_the_design_cannot_be_placed(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # Issue 19 found this with 32x32 (1024 DSPs); 8x8 takes the same path in a quarter of the time.
    monkeypatch.setenv("ACCEL_FPGA_CACHE", str(tmp_path / "cache"))
    assert main(["fpga", "synth", "--rows", "8", "--cols", "8", "--family", "ice40", "--out",
                 str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == ("accel: error: systolic_ws_8x8 does not fit ice40 up5k: it needs 64 DSPs "
                                       "(up5k has 8); no place and route was run (--no-pnr gives its synthesis "
                                       "figures)\n")
    assert not (tmp_path / "cache").exists()  # no tool ran, nothing was cached


def test_every_board_names_a_device_of_the_table() -> None:
    for board, (_, _, family, name) in BOARDS.items():
        assert name in {d.name for d in DEVICES[FpgaFamily(family)]}, board


def _report(freq_mhz: float | None, problems: tuple[str, ...] = ()) -> FpgaReport:
    resources = Resources.from_cells("ecp5", {"LUT4": 35, "CCU2C": 136, "TRELLIS_FF": 871, "MULT18X18D": 16})
    pnr = PnrReport((ClockFmax("clk", 104.05, 150.0),), {"TRELLIS_COMB": (491, 24288)})
    return FpgaReport("systolic", {"rows": 4, "cols": 4}, "systolic_ws_4x4", FpgaFamily.ECP5, "25k", "CABGA381",
                      freq_mhz, resources, pnr, None, (68, 132), {"yosys": "Yosys 0.70"}, "k", "synth_ecp5", problems)


def test_the_summary_counts_luts_as_the_device_and_gives_a_verdict_only_for_an_asked_target() -> None:
    text = _report(None).summary()
    assert "LUTs             307 / 24288 (1.3 %)  (35 LUT4 + 2 x 136 CCU2C)" in text
    assert "DSP               16 / 28 (57.1 %)" in text
    assert "Fmax   104.05 MHz on clk\n" in text and "target" not in text and "NOT met" not in text
    assert "Fmax   104.05 MHz on clk (target 150 MHz, NOT met)" in _report(150.0).summary()
    assert "(target 100 MHz, met)" in _report(100.0).summary()
    unfit = _report(None, ("64 DSPs (25k has 28)",))
    assert not unfit.fits and "does NOT fit ecp5 25k: needs 64 DSPs (25k has 28)" in unfit.summary()
    assert FpgaReport.from_json(json.loads(json.dumps(unfit.to_json()))) == unfit
