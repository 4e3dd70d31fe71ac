"""reports.pareto: Pareto fronts (2 and 3 objectives, ties, maximised objectives), best points, the knee,
and the sensitivity of an objective to each swept parameter."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from reports.pareto import ReportError, best_points, knee_point, pareto_front, sensitivity, swept_params


def frame(rows: list[tuple], columns: tuple[str, ...] = ("latency_s", "energy_j")) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=list(columns))
    df.insert(0, "point", range(len(df)))
    df["status"] = "ok"
    return df


def brute_force(values: np.ndarray) -> set[int]:
    """Rows no other row dominates (no worse everywhere, better somewhere), checked pairwise."""
    return {i for i, row in enumerate(values)
            if not any((other <= row).all() and (other < row).any() for other in values)}


def test_two_objectives_front_sorted_by_the_first():
    df = frame([(1.0, 9.0), (2.0, 4.0), (3.0, 5.0), (4.0, 1.0), (5.0, 1.0), (2.5, 4.0)])
    front = pareto_front(df, ["latency_s", "energy_j"])
    assert front["point"].tolist() == [0, 1, 3]
    assert front.index.tolist() == [0, 1, 3]  # the original index is kept


def test_ties_stay_on_the_front_and_equal_first_objective_keeps_only_the_best_second():
    df = frame([(1.0, 5.0), (1.0, 5.0), (1.0, 6.0), (2.0, 5.0), (2.0, 3.0), (2.0, 3.0), (3.0, 3.0)])
    front = pareto_front(df, ["latency_s", "energy_j"])
    # (1,5) twice: neither dominates the other; (1,6) and (2,5) are dominated; (2,3) twice; (3,3) dominated.
    assert front["point"].tolist() == [0, 1, 4, 5]


def test_maximize_flips_one_objective():
    df = frame([(1.0, 10.0), (2.0, 30.0), (3.0, 20.0), (4.0, 40.0)], ("latency_s", "throughput_per_s"))
    assert pareto_front(df, ["latency_s", "throughput_per_s"], maximize=["throughput_per_s"])["point"].tolist() \
        == [0, 1, 3]
    assert pareto_front(df, ["latency_s", "throughput_per_s"])["point"].tolist() == [0]


def test_three_objectives_front():
    df = frame([(1, 5, 5), (5, 1, 5), (5, 5, 1), (3, 3, 3), (4, 4, 4), (1, 5, 5), (2, 6, 5), (3, 3, 2)],
               ("latency_s", "energy_j", "luts"))
    front = pareto_front(df, ["latency_s", "energy_j", "luts"])
    # (3,3,3) is dominated by (3,3,2); (4,4,4) by (3,3,2); (2,6,5) by (1,5,5); the duplicate (1,5,5) stays.
    assert front["point"].tolist() == [0, 5, 7, 1, 2]


@pytest.mark.parametrize("objectives", [2, 3])
def test_random_fronts_match_the_pairwise_definition(objectives):
    rng = np.random.default_rng(7)
    values = rng.integers(0, 12, size=(400, objectives)).astype(float)  # small integers: many ties
    names = ("latency_s", "energy_j", "luts")[:objectives]
    df = frame([tuple(v) for v in values], names)
    front = pareto_front(df, list(names))
    assert set(front["point"]) == brute_force(values)


def test_rows_not_ok_or_with_nan_objectives_are_ignored():
    df = frame([(1.0, 1.0), (2.0, 2.0), (0.5, 0.5), (math.nan, 0.1)])
    df.loc[2, "status"] = "invalid"
    assert pareto_front(df, ["latency_s", "energy_j"])["point"].tolist() == [0]


def test_by_takes_one_front_per_workload():
    df = frame([(1.0, 2.0), (2.0, 1.0), (3.0, 3.0), (10.0, 20.0), (20.0, 10.0), (5.0, 50.0)])
    df["workload"] = ["a", "a", "a", "b", "b", "b"]
    assert pareto_front(df, ["latency_s", "energy_j"])["point"].tolist() == [0, 1]
    assert sorted(pareto_front(df, ["latency_s", "energy_j"], by=["workload"])["point"]) == [0, 1, 3, 4, 5]


def test_errors_name_what_is_wrong():
    df = frame([(1.0, 2.0)])
    with pytest.raises(ReportError, match=r"^A Pareto front needs two or three objectives, not 1 \(\['latency_s'\]\)$"):
        pareto_front(df, ["latency_s"])
    with pytest.raises(ReportError, match=r"^No column 'power' in the results; columns are: point, latency_s, "
                                          r"energy_j, status$"):
        pareto_front(df, ["latency_s", "power"])
    with pytest.raises(ReportError, match=r"^maximize must name objectives \(latency_s, energy_j\), not luts$"):
        pareto_front(df, ["latency_s", "energy_j"], maximize=["luts"])


def test_best_points_one_row_per_objective_first_among_equals():
    df = frame([(3.0, 1.0, 5.0), (1.0, 4.0, 9.0), (1.0, 2.0, 9.0), (2.0, 1.0, 1.0)],
               ("latency_s", "energy_j", "throughput_per_s"))
    best = best_points(df, ["latency_s", "energy_j", "throughput_per_s"], maximize=["throughput_per_s"])
    assert best["objective"].tolist() == ["latency_s", "energy_j", "throughput_per_s"]
    assert best["point"].tolist() == [1, 0, 1]


def test_knee_is_closest_to_the_ideal_point():
    df = frame([(1.0, 10.0), (2.0, 3.0), (6.0, 2.0), (10.0, 1.0)])
    front = pareto_front(df, ["latency_s", "energy_j"])
    assert knee_point(front, ["latency_s", "energy_j"]) == 1
    assert knee_point(front.iloc[:0], ["latency_s", "energy_j"]) is None


def sweep_like() -> pd.DataFrame:
    """latency = 8 / rows x (2 if the scratchpad is small): rows matters 4x, the scratchpad 2x, the
    allocator not at all; one invalid row that must not count."""
    rows = []
    for r in (2, 4, 8):
        for size in (1024, 4096):
            for allocator in ("none", "greedy"):
                rows.append({"point": len(rows), "workload": "w", "arch": "base", "array.rows": r,
                             "scratchpad.size_bytes": size, "mapper.allocator": allocator, "params": "{}",
                             "status": "ok", "reason": "", "latency_s": 8.0 / r * (2 if size == 1024 else 1)})
    rows.append({"point": len(rows), "workload": "w", "arch": "base", "array.rows": 0,
                 "scratchpad.size_bytes": 1024, "mapper.allocator": "none", "params": "{}",
                 "status": "invalid", "reason": "array.rows must be a positive integer, not 0",
                 "latency_s": math.nan})
    return pd.DataFrame(rows)


def test_swept_params_are_the_columns_between_arch_and_params():
    assert swept_params(sweep_like()) == ["array.rows", "scratchpad.size_bytes", "mapper.allocator"]
    assert swept_params(pd.DataFrame(columns=["latency_s", "array.cols", "status"])) == ["array.cols"]


def test_sensitivity_ratios_to_the_best_value_with_the_others_fixed():
    table = sensitivity(sweep_like(), "latency_s")
    assert table["param"].drop_duplicates().tolist() == ["array.rows", "scratchpad.size_bytes", "mapper.allocator"]
    rows = table[table["param"] == "array.rows"].set_index("value")
    assert rows["median_ratio"].to_dict() == {2: 4.0, 4: 2.0, 8: 1.0}
    assert rows["groups"].tolist() == [4, 4, 4]
    assert rows["spread"].iloc[0] == 4.0
    size = table[table["param"] == "scratchpad.size_bytes"].set_index("value")
    assert size["median_ratio"].to_dict() == {1024: 2.0, 4096: 1.0}
    assert size["spread"].iloc[0] == 2.0
    allocator = table[table["param"] == "mapper.allocator"]
    assert allocator["median_ratio"].tolist() == [1.0, 1.0] and allocator["spread"].iloc[0] == 1.0


def test_sensitivity_when_maximising_and_for_a_parameter_with_one_value():
    df = sweep_like()
    df["throughput_per_s"] = 1.0 / df["latency_s"]
    table = sensitivity(df, "throughput_per_s", ["array.rows", "scratchpad.size_bytes", "arch"], maximize=True)
    assert set(table["param"]) == {"array.rows", "scratchpad.size_bytes"}  # "arch" has one value
    rows = table[table["param"] == "array.rows"].set_index("value")
    assert rows["median_ratio"].to_dict() == pytest.approx({2: 4.0, 4: 2.0, 8: 1.0})
