"""SparseSystolicArray's Verilog on Icarus through cocotb: bit-exact against sim.numerics (nm_gemm in
N:M mode, systolic_tile in dense mode) and cycle-exact against sim.numerics.nm_tile_cycles, for
2:4, 1:4 and 2:8.

Each design is one parameters dict: the pytest side builds the tile from it and hands the same dict
to the testbench (``sparse_systolic_tb.py``, which reuses ``systolic_tb.py``'s driver and monitor).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from accel.formats import NumberFormat, Overflow
from rtl.cocotb_runner import CocotbTestFailure, run_cocotb
from rtl.sparse_systolic import SparseSystolicArray

TESTBENCH = Path(__file__).with_name("sparse_systolic_tb.py")
SCENARIOS = {"random_sparse_folds_back_to_back", "extreme_operands", "every_index_pattern_in_every_pe",
             "dense_mode_is_the_dense_tile", "stalls_on_both_sides", "start_refuses_to_run_twice"}


def _design(rows: int, cols: int, n: int, m: int, *, acc_format: str = "int32", overflow: str = "wrap",
            seed: int = 1) -> dict[str, Any]:
    return {"rows": rows, "cols": cols, "n": n, "m": m, "dataflow": "ws", "a_format": "int8", "b_format": "int8",
            "acc_format": acc_format, "overflow": overflow, "seed": seed}


DESIGNS: dict[str, dict[str, Any]] = {
    "2_4_4x4": _design(4, 4, 2, 4, seed=11),
    # 16-bit accumulators, so that the extreme operands (2 or 4 products of up to 16384 per column)
    # saturate or wrap
    "1_4_2x3_int16_saturate": _design(2, 3, 1, 4, acc_format="int16", overflow="saturate", seed=12),
    "2_8_4x2_int16_wrap": _design(4, 2, 2, 8, acc_format="int16", overflow="wrap", seed=13),
}


def build_tile(parameters: dict[str, Any]) -> SparseSystolicArray:
    """The tile a parameters dict describes (the testbench reads the same dict)."""
    return SparseSystolicArray(
        parameters["rows"], parameters["cols"], parameters["n"], parameters["m"],
        a_format=NumberFormat.parse(parameters["a_format"]), b_format=NumberFormat.parse(parameters["b_format"]),
        acc_format=NumberFormat.parse(parameters["acc_format"], overflow=Overflow(parameters["overflow"])),
    )


@pytest.mark.rtl
@pytest.mark.parametrize("design", DESIGNS)
def test_sparse_systolic_matches_numerics_and_timing_on_icarus(design: str, tmp_path: Path) -> None:
    parameters = DESIGNS[design]
    result = run_cocotb(toplevel="sparse_systolic", component=build_tile(parameters), test_module=TESTBENCH,
                        build_dir=tmp_path, parameters=parameters, seed=parameters["seed"])
    assert {case.name for case in result.cases} == SCENARIOS, result.summary()
    assert result.passed


@pytest.mark.rtl
def test_a_wrong_golden_value_fails_the_sparse_systolic_test(tmp_path: Path) -> None:
    """Off-by-one in the reference must turn into a failing cocotb test, not a silent pass."""
    parameters = {**DESIGNS["2_4_4x4"], "reference_offset": 1}
    with pytest.raises(CocotbTestFailure) as failure:
        run_cocotb(toplevel="sparse_systolic", component=build_tile(parameters), test_module=TESTBENCH,
                   build_dir=tmp_path, parameters=parameters, testcase="random_sparse_folds_back_to_back")
    result = failure.value.result
    assert [case.name for case in result.failed] == ["random_sparse_folds_back_to_back"]
    assert "outputs differed from sim.numerics" in result.failed[0].message
