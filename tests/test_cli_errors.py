"""The CLI's promise, one test per class of bad input a fuzz run found: one line ``accel: error: ...``,
exit status 2, no traceback, within seconds; and the light start (no heavy import for ``--help``)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from accel.cli import main

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("onnx", "pandas", "matplotlib", "amaranth", "highspy", "simpy")


def fails(capsys, *argv: str, match: str, seconds: float = 30.0) -> str:
    """Run ``accel argv``; check it ends with exactly one error line matching ``match``, exit 2, in time."""
    start = time.perf_counter()
    try:
        code = main(list(argv))
    except SystemExit as exit_info:  # argparse's errors leave through SystemExit
        code = exit_info.code
    elapsed = time.perf_counter() - start
    out, err = capsys.readouterr()
    assert code == 2, (code, err)
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert re.match(rf"^accel: error: {match}\n$", err), err
    assert elapsed < seconds, f"took {elapsed:.1f} s"
    return out


def _accel(*argv: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "accel.cli", *argv], capture_output=True, text=True, cwd=ROOT,
                          timeout=120, **kwargs)


# -- arguments -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("argv", "match"), [
    (["run", "--batch", "0"], r"run: argument --batch: must be a positive integer, not '0' \(see accel run --help\)"),
    (["run", "--check-numerics", "--seed=-1"],
     r"run: argument --seed: must be a non-negative integer, not '-1' \(see accel run --help\)"),
    (["frobnicate"], r"argument COMMAND: invalid choice: 'frobnicate' .*"),
    (["map", "--allocator", "best"], r"map: argument --allocator: invalid choice: 'best' .*"),
    (["run", "--arch", "gemmini", "--scalesim-config", "x.cfg"],
     r"run: argument --scalesim-config: not allowed with argument --arch .*"),
    (["run", "--workload", "resnet18", "--topology", "x.csv"],
     r"run: argument --topology: not allowed with argument --workload .*"),
    (["info", "gemmini", "--toml", "--json"], r"info: argument --json: not allowed with argument --toml .*"),
    (["sweep", "--samples", "4"], r"--samples N needs --sample random or --sample lhs .*"),
    (["run", "--force"], r"--force concerns --out, which is not given"),
    (["fpga", "run", "--port", "/dev/ttyUSB0", "--baud", "-9600"],
     r"fpga run: argument --baud: must be a positive integer, not '-9600' \(see accel fpga run --help\)"),
    (["fpga", "run", "--port", "/dev/ttyUSB0", "--design", "npu", "--seed", "-1"],
     r"fpga run: argument --seed: must be a non-negative integer, not '-1' \(see accel fpga run --help\)"),
    (["fpga", "synth", "--family", "ice40", "--freq", "inf", "--out", "build"],
     r"fpga synth: argument --freq: must be a positive number of MHz, not 'inf' \(see accel fpga synth --help\)"),
    (["fpga", "build", "--board", "ulx3s", "--design", "npu", "--clock-mhz", "0"],
     r"fpga build: argument --clock-mhz: must be a positive number of MHz, not '0' \(see accel fpga build --help\)"),
    (["fpga", "synth", "--family", "ice40", "--design", "systolic", "--arch", "eyeriss", "--out", "build"],
     r"--design systolic takes --rows, --cols, --dataflow, not --arch"),
    (["fpga", "synth", "--family", "ecp5", "--design", "npu", "--rows", "8", "--out", "build"],
     r"--design npu takes --arch, --max-commands, --program-words, --requant-channels, not --rows"),
    (["fpga", "build", "--board", "ulx3s", "--design", "pe", "--rows", "8", "--dram-bytes", "64"],
     r"--design pe takes no unit options, not --rows, --dram-bytes"),
    (["fpga", "build", "--board", "ulx3s", "--design", "host_link", "--dataflow", "os"],
     r"--design host_link takes --rows, --cols, not --dataflow"),
])
def test_bad_arguments_are_one_line(capsys, argv, match):
    fails(capsys, *argv, match=match)


def test_version_and_verbose_after_the_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and re.match(r"^accel \S+\n$", capsys.readouterr().out)
    assert main(["workload", "alexnet", "-v"]) == 0
    assert "accel: info: " in capsys.readouterr().err


# -- outputs ---------------------------------------------------------------------------------------

def test_outputs_that_cannot_be_written_are_refused_before_any_work(capsys, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    fails(capsys, "run", "--workload", "alexnet", "--out", str(a_file),
          match=rf"--out {a_file}: is a file; expected a folder to write into", seconds=5)
    fails(capsys, "run", "--workload", "alexnet", "--out", str(a_file / "sub"),
          match=rf"--out {a_file}/sub: {a_file} is a file, not a folder", seconds=5)
    fails(capsys, "report", str(tmp_path / "r.csv"), "--out", str(a_file),
          match=rf"--out {a_file}: is a file; expected a folder to write into", seconds=5)
    fails(capsys, "map", "--workload", "alexnet", "--out", str(tmp_path),
          match=rf"--out {tmp_path}: is a folder; expected a file name", seconds=5)  # sweep's: tests/test_sweep_faults
    fails(capsys, "map", "--workload", "alexnet", "--out", str(a_file / "plan.json"),
          match=rf"--out {a_file}/plan.json: {a_file} is a file, not a folder", seconds=5)
    fails(capsys, "map", "--workload", "alexnet", "--plot", str(tmp_path / "map.jpg"),
          match=rf"--plot {tmp_path}/map.jpg: must end in .png, .svg or .pdf, not .jpg", seconds=5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # nothing half-written (no plan.json.tmp)


def test_run_refuses_a_folder_holding_an_earlier_run_unless_forced(capsys, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "COMPUTE_REPORT.csv").write_text("an earlier SCALE-Sim run\n")
    (out / "notes.txt").write_text("mine\n")
    fails(capsys, "run", "--workload", "alexnet", "--out", str(out),
          match=rf"--out {out}: the folder is not empty \(COMPUTE_REPORT.csv, notes.txt\); a run writes into an "
                r"empty folder \(or give --force to replace an earlier run's files\)", seconds=5)
    assert main(["run", "--workload", "alexnet", "--out", str(out), "--force", "--json"]) == 0
    written = json.loads(capsys.readouterr().out)["files"]
    # the earlier run's file is gone, the user's stays, and every file there is this run's
    assert sorted(p.name for p in out.iterdir()) == sorted([*(Path(p).name for p in written.values()), "notes.txt"])


@pytest.mark.parametrize("argv", [["workload", "resnet50"], ["info", "eyeriss", "--json"]])
def test_a_closed_pipe_is_one_line(argv):
    proc = subprocess.Popen([sys.executable, "-m", "accel.cli", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=ROOT, text=True)
    proc.stdout.close()  # what `| head` does once it has read enough (here: before the first line)
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 2
    assert err == "accel: error: the output was closed before everything was written (broken pipe)\n", err


# -- inputs ----------------------------------------------------------------------------------------

def test_files_with_a_byte_order_mark_are_read(capsys, tmp_path, shared_data):
    assert main(["info", "gemmini", "--toml"]) == 0
    design = tmp_path / "bom.toml"
    design.write_bytes(b"\xef\xbb\xbf" + capsys.readouterr().out.encode())
    assert main(["info", str(design), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "gemmini"
    cfg = tmp_path / "bom.cfg"
    cfg.write_bytes(b"\xef\xbb\xbf" + (shared_data / "scalesim" / "scale.cfg").read_bytes())
    topology = tmp_path / "tiny.csv"
    topology.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, "
                        "Strides,\nc1,8,8,3,3,4,8,1,\n")
    assert main(["run", "--scalesim-config", str(cfg), "--topology", str(topology), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["macs"] == 6 * 6 * 3 * 3 * 4 * 8


def test_a_folder_given_as_a_scalesim_config_is_one_line(capsys, tmp_path):
    folder = tmp_path / "scale.cfg"
    folder.mkdir()
    fails(capsys, "run", "--scalesim-config", str(folder), "--topology", "x.csv",
          match=rf"{folder}: is a folder, not a SCALE-Sim config file", seconds=5)


@pytest.mark.parametrize("height", ["inf", "1e400", "nan"])
def test_a_scalesim_config_with_an_infinite_size_is_one_line(capsys, tmp_path, shared_data, height):
    cfg = tmp_path / "inf.cfg"
    cfg.write_text(re.sub(r"(?m)^ArrayHeight\s*:.*$", f"ArrayHeight: {height}",
                          (shared_data / "scalesim" / "scale.cfg").read_text()))
    fails(capsys, "run", "--scalesim-config", str(cfg), "--topology", "x.csv",
          match=rf"{cfg}: \[architecture_presets\] arrayheight must be an integer, not '{height}'", seconds=5)


def test_a_scalesim_bandwidth_list_uses_its_first_entry(capsys, tmp_path, shared_data):
    # SCALE-Sim v3's scale_config reads "Bandwidth : 10, 20" as a list; its ports use bandwidths[0]
    cfg = tmp_path / "bws.cfg"
    cfg.write_text(re.sub(r"(?m)^Bandwidth\s*:.*$", "Bandwidth : 12, 24",
                          (shared_data / "scalesim" / "scale.cfg").read_text()))
    from accel.scalesim import load_scalesim_config

    arch = load_scalesim_config(cfg)
    assert arch.dram.bandwidth_bytes_per_cycle == arch.dma.bandwidth_bytes_per_cycle == 12.0


def test_a_huge_integer_in_a_design_is_one_line(capsys, tmp_path):
    assert main(["info", "gemmini", "--toml"]) == 0
    text = re.sub(r"(?m)^rows = \d+$", "rows = 100000000000000000000", capsys.readouterr().out)
    design = tmp_path / "big.toml"
    design.write_text(text)
    fails(capsys, "run", "--arch", str(design), "--workload", "alexnet",
          match=rf"{design}: array.rows must be at most 2\*\*40 \(1,099,511,627,776\), not "
                r"100,000,000,000,000,000,000", seconds=5)


# -- work that would never end is refused before it starts ---------------------------------------------

_TOO_MANY = r"more than 2,000,000, the most a plan may hold; use a larger scratchpad or array, or a smaller workload"


@pytest.mark.parametrize(("row", "worst"), [  # heights of 1e9
    # a 3x3 window reads three whole input rows of 1e9 pixels: no tile's band fits the scratchpad
    ("c1,1000000000,1000000000,3,3,64,64,1,", r"Layer 'c1': not even a 1x1x1 tile fits half of the scratchpad.*"),
    # a 1x1 output on a 100,000-channel layer
    ("c1,7,7,7,7,100000,100000,1,", r"'huge' on gemmini: its mapping needs [0-9,]+ compute commands .*" + _TOO_MANY),
])
def test_huge_or_degenerate_topologies_are_refused_in_seconds(capsys, tmp_path, row, worst):
    topology = tmp_path / "huge.csv"
    topology.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, "
                        f"Strides,\n{row}\n")
    fails(capsys, "run", "--workload", str(topology), match=worst, seconds=20)


def test_a_scratchpad_of_a_few_bytes_is_refused_in_seconds(capsys, tmp_path):
    assert main(["info", "gemmini", "--toml"]) == 0
    text = re.sub(r"(\[scratchpad\]\nsize_bytes = )\d+", r"\g<1>64", capsys.readouterr().out)
    design = tmp_path / "tiny.toml"
    design.write_text(text)
    fails(capsys, "run", "--arch", str(design), "--workload", "alexnet",
          # conv1's 11x11 windows read bands of whole input rows: not one fits 32 B
          match=r"Layer 'conv1': not even a 1x1x1 tile fits half of the scratchpad \(32 B\).*", seconds=20)
    fails(capsys, "map", "--arch", str(design), "--workload", "alexnet", match=r"Tensor 'conv1.weight': .*",
          seconds=20)


def _onnx(path: Path, shape: list[int], op: str = "Relu") -> Path:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.ones((16, shape[1], 3, 3), dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]), helper.make_node(op, ["y"], ["z"])],
        path.stem, [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)], [weights])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


@pytest.mark.parametrize("allocator", ["none", "ilp"])
def test_an_onnx_model_with_huge_dimensions_is_refused_in_seconds(capsys, tmp_path, allocator):
    model = _onnx(tmp_path / "huge.onnx", [1, 3, 60000, 60000])
    fails(capsys, "run", "--arch", "fpga-small", "--workload", str(model), "--allocator", allocator,
          # a 3x3 window's band is three whole input rows of 60,000 pixels, more than a buffer holds
          match=r"Layer 'Conv_0': not even a 1x1x1 tile fits half of the scratchpad \(8192 B\).*", seconds=30)


def test_an_unsupported_onnx_op_warns_once(capsys, tmp_path):
    model = _onnx(tmp_path / "odd.onnx", [1, 3, 16, 16], op="Hardmax")
    assert main(["workload", str(model)]) == 0
    err = capsys.readouterr().err
    assert err == (f"accel: warning: ONNX file '{model}': op 'Hardmax' (node 'Hardmax_1') is not modelled; "
                   "imported as a pass-through layer with no work\n"), err


# -- a light start ---------------------------------------------------------------------------------

def test_the_cli_imports_nothing_heavy_to_start():
    probe = ("import sys, accel.cli, contextlib, io\n"
             "with contextlib.redirect_stdout(io.StringIO()):\n"
             "    try:\n        accel.cli.main(['--help'])\n    except SystemExit:\n        pass\n"
             f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", proc.stdout


def test_mapping_without_an_ilp_does_not_load_the_solver():
    probe = ("import sys, mapper, workloads; from accel import config\n"
             "mapper.map_graph(workloads.load('resnet18'), config.load('gemmini'))\n"
             "print('highspy' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_long_steps_show_the_latest_library_step():
    import io
    import logging

    from accel.cli._output import activity

    stream = io.StringIO()
    with activity("accel fpga synth", stream=stream, force=True, refresh_s=0.01):
        logging.getLogger("rtl.fpga.synth").info("systolic_ws_4x4 on ecp5: place and route")
        time.sleep(0.05)
    shown = stream.getvalue()
    assert "accel fpga synth: 00:00, systolic_ws_4x4 on ecp5: place and route" in shown, shown
    assert shown.endswith("\r")  # the line is cleared at the end
    quiet = io.StringIO()  # not a terminal: nothing is shown
    with activity("accel run", stream=quiet):
        logging.getLogger("mapper").info("not shown")
    assert quiet.getvalue() == ""


# -- RTL and FPGA ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("argv", "match"), [
    (["fpga", "synth", "--family", "ice40", "--design", "npu", "--max-commands", "1", "--no-pnr"],
     r"NPU max_commands must be an integer of at least 2, not 1"),
    (["fpga", "synth", "--family", "ice40", "--design", "npu", "--program-words", "0", "--no-pnr"],
     r"NPU program_words must be an integer of at least 48, not 0"),
    (["fpga", "build", "--board", "arty-a7", "--design", "npu", "--max-commands", "-1", "--script-only"],
     r"NPU max_commands must be an integer of at least 2, not -1"),
    (["fpga", "build", "--board", "arty-a7", "--design", "npu", "--dram-bytes", "0", "--script-only"],
     r"NPULink dram_bytes must be a positive multiple of 4 below 2\*\*32, not 0"),
    (["fpga", "build", "--board", "arty-a7", "--design", "npu", "--clock-mhz", "50", "--script-only"],
     r"unit 'npu' takes clock_mhz only on ECP5 boards \(their PLL\), not on series7"),
])
def test_npu_sizes_a_board_cannot_build_are_one_line_and_leave_no_folder(capsys, tmp_path, argv, match):
    out = tmp_path / "out"
    fails(capsys, *argv, "--out", str(out), match=match, seconds=60)
    assert not out.exists()


def test_fpga_outputs_that_cannot_be_written_are_refused_before_any_work(capsys, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    utilization = ROOT / "tests" / "fixtures" / "vivado" / "rosebud_kcu_fpga_utilization_placed.rpt"
    fails(capsys, "fpga", "synth", "--family", "ice40", "--design", "pe", "--no-pnr", "--out", str(a_file),
          match=rf"--out {a_file}: is a file; expected a folder to write into", seconds=5)
    fails(capsys, "fpga", "build", "--board", "arty-a7", "--script-only", "--out", str(a_file),
          match=rf"--out {a_file}: is a file; expected a folder to write into", seconds=5)
    fails(capsys, "fpga", "build", "--board", "icebreaker", "--design", "pe", "--out", str(a_file / "sub"),
          match=rf"--out {a_file}/sub: {a_file} is a file, not a folder", seconds=5)
    fails(capsys, "fpga", "report", "--utilization", str(utilization), "--out", str(a_file),
          match=rf"--out {a_file}: is a file; expected a folder to write into", seconds=5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"] and a_file.read_text() == "x"
