"""The RTL unit registry (what ``accel rtl generate`` builds) and its Verilog on Icarus and yosys."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from accel.errors import ConfigError
from rtl.fpga.nextpnr import find_tool
from rtl.units import UNITS, build_unit, generate_unit
from rtl.verilog import generate, read_manifest

# Every unit, with the options of one build each (the CLI passes the same keywords).
BUILDS: dict[str, tuple[str, dict[str, object]]] = {
    "pe": ("pe", {}),
    "systolic_ws": ("systolic", {"rows": 4, "cols": 8, "dataflow": "ws"}),
    "systolic_os": ("systolic", {"rows": 4, "cols": 4, "dataflow": "os", "acc_format": "int20",
                                 "overflow": "saturate"}),
    "requant_double": ("requant", {"lanes": 4}),
    "requant_single": ("requant", {"mode": "single"}),
    "npu": ("npu", {"arch": "fpga-small", "max_commands": 16, "program_words": 256}),
}


@pytest.fixture(scope="module")
def verilog(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("units")
    return {key: generate_unit(unit, out, **options) for key, (unit, options) in BUILDS.items()}


def test_registry_names_every_unit() -> None:
    assert set(UNITS) == {"pe", "systolic", "requant", "nm_compressor", "sparse_systolic", "npu"}


def test_generate_writes_verilog_and_manifest(verilog: dict[str, Path]) -> None:
    assert verilog["systolic_ws"].name == "systolic_ws_4x8.v"
    manifest = read_manifest(verilog["systolic_ws"])
    assert manifest.component == "rtl.systolic.SystolicArray" and manifest.latency == 4 + 8 - 1
    assert manifest.parameters["dataflow"] == "ws" and manifest.parameters["cols"] == 8
    assert manifest.port("inputs__payload").width == 4 * 8 + 1
    assert read_manifest(verilog["systolic_os"]).parameters["overflow"] == "saturate"
    assert read_manifest(verilog["requant_double"]).latency == 5
    assert read_manifest(verilog["pe"]).latency == 2


def test_build_unit_refuses_unknown_names_and_options() -> None:
    with pytest.raises(ConfigError, match=r"^RTL unit must be one of nm_compressor, npu, pe, requant, "
                                          r"sparse_systolic, systolic, not 'fifo'$"):
        build_unit("fifo")
    with pytest.raises(ConfigError, match=r"^RTL unit 'systolic' takes options rows, cols, dataflow, a_format, "
                                          r"b_format, acc_format, overflow, weight_buffers, not depth$"):
        build_unit("systolic", depth=3)
    with pytest.raises(ConfigError, match=r"^overflow must be 'wrap' or 'saturate', not 'clip'$"):
        build_unit("pe", overflow="clip")


@pytest.mark.parametrize(("options", "message"), [
    ({"max_commands": 1}, r"^NPU max_commands must be an integer of at least 2, not 1$"),
    ({"max_commands": -1}, r"^NPU max_commands must be an integer of at least 2, not -1$"),
    ({"program_words": 0}, r"^NPU program_words must be an integer of at least 48, not 0$"),
    ({"program_words": 47}, r"^NPU program_words must be an integer of at least 48, not 47$"),
    ({"max_commands": 16.0}, r"^NPU max_commands must be an integer of at least 2, not 16.0$"),
])
def test_an_npu_too_small_to_hold_a_program_is_refused(options, message) -> None:
    """A one-entry command table has no address port and 47 words cannot hold a one-command image."""
    with pytest.raises(ConfigError, match=message):
        build_unit("npu", **options)


def test_npu_errors_name_the_file_a_design_came_from(tmp_path: Path) -> None:
    """A TOML copied from a preset keeps the preset's `name`; the NPU's errors name the file instead
    (an :class:`~accel.hardware.Accelerator` given as a value is still called by its name)."""
    from importlib import resources

    from accel.config import load

    text = (resources.files("accel") / "presets" / "fpga_small.toml").read_text()
    mine = tmp_path / "mine.toml"
    mine.write_text(text.replace("channels = 1", "channels = 2"))
    with pytest.raises(ConfigError, match=rf"^NPU for {re.escape(repr(str(mine)))}: dma.channels must be 1, not 2$"):
        build_unit("npu", arch=str(mine))
    with pytest.raises(ConfigError, match=r"^NPU for 'fpga-small': dma.channels must be 1, not 2$"):
        build_unit("npu", arch=load(mine))


@pytest.mark.rtl
@pytest.mark.parametrize("key", BUILDS)
def test_verilog_compiles_with_icarus(key: str, verilog: dict[str, Path], tmp_path: Path) -> None:
    if shutil.which("iverilog") is None:
        pytest.skip("iverilog is not installed")
    path = verilog[key]
    done = subprocess.run(["iverilog", "-g2012", "-o", str(tmp_path / "a.out"), "-s", path.stem, str(path)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


class _Decode(wiring.Component):
    """A combinational process whose input never changes after time 0 in the bench below."""

    def __init__(self) -> None:
        super().__init__({"sel": In(2), "code": Out(8)})

    def elaborate(self, platform: object) -> Module:
        m = Module()
        with m.Switch(self.sel):
            with m.Case(0):
                m.d.comb += self.code.eq(3)
            with m.Case(1):
                m.d.comb += self.code.eq(5)
            with m.Default():
                m.d.comb += self.code.eq(7)
        return m


@pytest.mark.rtl
def test_combinational_processes_evaluate_at_time_zero_on_icarus_2012(tmp_path: Path) -> None:
    """An ``always @*`` whose inputs are set by a declaration (no event under -g2012) still runs once:
    without rtl.verilog's time-0 kick, ``code`` stays X for the whole simulation."""
    if shutil.which("iverilog") is None:
        pytest.skip("iverilog is not installed")
    text = generate(_Decode(), "decode")
    assert "`ifndef SYNTHESIS\n  initial #0 " in text
    (tmp_path / "decode.v").write_text(text)
    (tmp_path / "tb.v").write_text("module tb; reg [1:0] sel = 2'd1; wire [7:0] code;\n"
                                   "  decode dut(.sel(sel), .code(code));\n"
                                   "  initial begin #1 $display(\"code=%b\", code); $finish; end\nendmodule\n")
    build = subprocess.run(["iverilog", "-g2012", "-o", str(tmp_path / "tb.vvp"), "-s", "tb",
                            str(tmp_path / "tb.v"), str(tmp_path / "decode.v")], capture_output=True, text=True,
                           check=False)
    assert build.returncode == 0, build.stderr
    run = subprocess.run(["vvp", "-n", str(tmp_path / "tb.vvp")], capture_output=True, text=True, check=False)
    assert "code=00000101" in run.stdout, run.stdout + run.stderr


@pytest.mark.fpga
@pytest.mark.parametrize("key", BUILDS)
def test_verilog_reads_into_yosys(key: str, verilog: dict[str, Path]) -> None:
    path = verilog[key]
    # Relative paths: YoWASP's yosys sees only its working directory.
    script = f"read_verilog {path.name}; hierarchy -check -top {path.stem}"
    done = subprocess.run([*find_tool("yosys"), "-q", "-p", script],
                          cwd=path.parent, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
