"""HostLink (UART + WS tile + command protocol) on Icarus through cocotb, driven by the real host driver."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rtl.cocotb_runner import CocotbTestFailure, run_cocotb
from rtl.fpga.host_link import HostLink

TESTBENCH = Path(__file__).with_name("uart_host_link_tb.py")
SCENARIOS = {"driver_runs_tiles_bit_exact", "refused_commands_answer_error", "wrong_golden_fails",
             "start_refuses_to_run_twice"}


def _design(rows: int, cols: int, *, seed: int) -> dict[str, Any]:
    return {"rows": rows, "cols": cols, "divisor": 4, "max_stream": 8, "seed": seed, "stream_lengths": [1, 3, 8]}


def _build(parameters: dict[str, Any]) -> HostLink:
    return HostLink(parameters["rows"], parameters["cols"], parameters["divisor"], max_stream=parameters["max_stream"])


@pytest.mark.rtl
@pytest.mark.parametrize(("rows", "cols"), [(2, 3), (4, 4)])
def test_host_link_end_to_end_through_uart_pins(rows: int, cols: int, tmp_path: Path) -> None:
    parameters = _design(rows, cols, seed=rows * 10 + cols)
    result = run_cocotb(toplevel="host_link", component=_build(parameters), test_module=TESTBENCH,
                        build_dir=tmp_path, parameters=parameters, seed=parameters["seed"])
    assert {case.name for case in result.cases} == SCENARIOS, result.summary()
    assert result.passed


@pytest.mark.rtl
def test_a_wrong_golden_value_fails_through_the_driver(tmp_path: Path) -> None:
    parameters = {**_design(2, 2, seed=5), "reference_offset": 1}
    with pytest.raises(CocotbTestFailure) as failure:
        run_cocotb(toplevel="host_link", component=_build(parameters), test_module=TESTBENCH,
                   build_dir=tmp_path, parameters=parameters, testcase="wrong_golden_fails")
    assert "differ from sim.numerics.systolic_tile" in failure.value.result.failed[0].message
