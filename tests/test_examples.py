"""The scripts in examples/ run as a user runs them, and say what they claim."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_nm_study_reports_every_pattern_relative_to_dense(tmp_path):
    out = tmp_path / "nm.csv"
    proc = subprocess.run([sys.executable, str(EXAMPLES / "nm_study.py"), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(out)
    assert set(table["model"]) == {"resnet50", "bert_base_layer"}
    assert list(table["pattern"][:4]) == ["dense", "2:4", "1:4", "2:8"]
    dense = table[table["pattern"] == "dense"]
    assert (dense["speedup"] == 1).all()
    sparse = table[table["pattern"] != "dense"]
    assert (sparse["speedup"] > 1).all() and (sparse["dram_vs_dense"] < 1).all()
