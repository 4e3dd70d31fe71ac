"""Agreement with SCALE-Sim v3: per-layer compute cycles equal its own reports, for WS, OS and IS.

The fixtures in ``tests/fixtures/scalesim`` are SCALE-Sim v3's ``COMPUTE_REPORT.csv`` files, produced by
``benchmarks/scalesim_reference.py`` on the topologies in ``../shared/data/scalesim`` with the configs
stored beside them (see that folder's README). SCALE-Sim's compute cycles are ``Total Cycles - Stall
Cycles``, the 0-based index of the last compute cycle: one less than a count.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from accel.errors import ConfigError
from accel.hardware import Dataflow
from accel.scalesim import load_scalesim_config
from accel.timing import gemm_tile_cycles
from mapper import Depthwise, LoopOrder, MapOptions, map_graph
from reports.scalesim import COLUMNS, compute_report, write_compute_report
from sim import simulate
from workloads import load

FIXTURES = Path(__file__).parent / "fixtures" / "scalesim"
TOPOLOGIES = {"alexnet": "alexnet.csv", "gpt2": "gpt2.csv", "vit_s": "vit_s.csv", "resnet18": "Resnet18.csv",
              "mobilenet": "mobilenet.csv", "yolo_tiny": "yolo_tiny.csv"}
REPORTS = sorted(p for p in FIXTURES.glob("*.csv") if re.fullmatch(r"\w+_(ws|os|is)_\d+x\d+(\.partial)?\.csv", p.name))


def read_report(path: Path) -> list[dict[str, float]]:
    with path.open() as handle:
        rows = [[cell.strip() for cell in row] for row in csv.reader(handle) if any(c.strip() for c in row)]
    header = [h for h in rows[0] if h]
    return [dict(zip(header, map(float, filter(None, row)), strict=True)) for row in rows[1:]]


def fixture_case(path: Path, shared_data: Path):
    name, dataflow, size = path.name.split(".")[0].rsplit("_", 2)
    arch = load_scalesim_config(FIXTURES / f"scale_{size}_{dataflow}.cfg")
    graph = load(str(shared_data / "scalesim" / TOPOLOGIES[name]))
    return arch, graph, read_report(path)


def test_there_are_fixtures_for_every_dataflow():
    dataflows = {p.name.split(".")[0].rsplit("_", 2)[1] for p in REPORTS}
    assert dataflows == {"ws", "os", "is"}
    models = {p.name.split(".")[0].rsplit("_", 2)[0] for p in REPORTS}
    assert {"alexnet", "resnet18", "gpt2"} <= models


@pytest.mark.parametrize("report", REPORTS, ids=[p.stem for p in REPORTS])
def test_simulated_compute_cycles_equal_scalesim_per_layer(report, shared_data):
    arch, graph, theirs = fixture_case(report, shared_data)
    result = simulate(map_graph(graph, arch, MapOptions(loop_order=LoopOrder.FOLD_OUTER, depthwise=Depthwise.ARRAY)))
    ours = result.layers()
    ours = ours[ours["array_cycles"] > 0].reset_index(drop=True)
    assert len(theirs) <= len(ours)
    for i, row in enumerate(theirs):
        scalesim_compute = int(row["Total Cycles"] - row["Stall Cycles"])
        assert ours.loc[i, "array_cycles"] - 1 == scalesim_compute, f"layer {i} ({ours.loc[i, 'layer']})"


@pytest.mark.parametrize("report", REPORTS, ids=[p.stem for p in REPORTS])
def test_the_datasheet_alone_gives_scalesim_compute_cycles(report, shared_data):
    arch, graph, theirs = fixture_case(report, shared_data)
    dataflow = arch.array.dataflows[0]
    layers = [layer for layer in graph.layers if layer.gemm is not None]
    for layer, row in zip(layers, theirs, strict=False):
        g = layer.gemm
        cycles = g.batch * gemm_tile_cycles(arch.array, dataflow, g.m, g.k, g.n)
        assert cycles - 1 == int(row["Total Cycles"] - row["Stall Cycles"]), layer.name


def test_compatible_report_has_scalesim_columns_and_compute(tmp_path, shared_data):
    report = FIXTURES / "alexnet_os_32x32.csv"
    arch, graph, theirs = fixture_case(report, shared_data)
    result = simulate(map_graph(graph, arch, MapOptions(loop_order=LoopOrder.FOLD_OUTER, depthwise=Depthwise.ARRAY)))
    frame = compute_report(result)
    assert tuple(frame.columns) == COLUMNS
    for ours, row in zip(frame.itertuples(index=False), theirs, strict=True):
        assert ours[2] - ours[3] == row["Total Cycles"] - row["Stall Cycles"]
        assert ours[5] == pytest.approx(row["Mapping Efficiency %"])
        assert ours[6] == pytest.approx(row["Compute Util %"])
    path = write_compute_report(result, tmp_path / "COMPUTE_REPORT.csv")
    assert path.read_text().splitlines()[0] == ", ".join(COLUMNS) + ","
    assert read_report(path)[0]["LayerID"] == 0


def test_scalesim_configs_load(shared_data):
    google = load_scalesim_config(shared_data / "scalesim" / "google.cfg")
    assert (google.array.rows, google.array.cols, google.array.dataflows) == (256, 256, (Dataflow.OS,))
    assert google.scratchpad.size_bytes == (6144 + 6144) * 1024
    assert google.accumulator.size_bytes == 2048 * 1024
    scale = load_scalesim_config(shared_data / "scalesim" / "scale.cfg")
    assert scale.dram.bandwidth_bytes_per_cycle == 10


def test_bad_scalesim_config_names_file_and_key(tmp_path, shared_data):
    text = (shared_data / "scalesim" / "scale.cfg").read_text()
    bad = tmp_path / "bad.cfg"
    bad.write_text(text.replace("ArrayHeight:    32", "ArrayHeight:    thirty-two").replace("Dataflow : ws",
                                                                                          "Dataflow : rs"))
    with pytest.raises(ConfigError, match=r"^.*bad\.cfg: \[architecture_presets\] arrayheight must be an integer, "
                                          r"not 'thirty-two'\n.*bad\.cfg: \[architecture_presets\] dataflow must be "
                                          r"one of ws, os, is, not 'rs'$"):
        load_scalesim_config(bad)
    garbage = tmp_path / "garbage.cfg"
    garbage.write_text("this is not an ini file\n")
    with pytest.raises(ConfigError, match=r"^.*garbage\.cfg: not a SCALE-Sim config \(INI\) file: "):
        load_scalesim_config(garbage)
