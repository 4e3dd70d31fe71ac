"""`accel run` on every preset and every zoo model: a summary, CSVs, the trace and the power plot."""

from __future__ import annotations

import json

import pytest

from accel import config
from accel.cli import main
from workloads import zoo

CASES = [(preset, "resnet18") for preset in config.preset_names()] + [
    ("gemmini", model) for model in zoo.names() if model != "resnet18" and model not in zoo.LLM_MODELS]


@pytest.mark.parametrize(("preset", "model"), CASES, ids=[f"{p}-{m}" for p, m in CASES])
def test_run_writes_every_report(capsys, tmp_path, preset, model):
    assert main(["run", "--arch", preset, "--workload", model, "--out", str(tmp_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    for key in ("total_cycles", "latency_s", "energy_pj", "dram_bytes", "macs"):
        assert summary[key] > 0, key
    assert summary["macs"] == zoo.build(model).total_macs
    for name in ("summary.csv", "layers.csv", "units.csv", "energy.csv", "power.csv", "power.png",
                 "layer_cycles.png", "trace.json"):
        assert (tmp_path / name).stat().st_size > 0, name
    trace = json.loads((tmp_path / "trace.json").read_text())
    assert sum(e["ph"] == "X" for e in trace["traceEvents"]) == summary["commands"]
