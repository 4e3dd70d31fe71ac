"""Analysis of a sweep's DataFrame: the Pareto front, the best point per objective, sensitivity.

A sweep result has one row per (design point, workload) with ``status`` (``ok``, ``invalid`` or
``error``), the swept parameters (one column per dotted path, e.g. ``array.rows``, placed between
``arch`` and ``params``) and metric columns that are NaN unless the row is ``ok``. Everything here
looks at ``ok`` rows with finite objectives only and never modifies its input.

Objectives are minimised unless named in ``maximize`` (:data:`HIGHER_IS_BETTER` lists the sweep's
metrics where more is better; :func:`directions` applies it). Row ``a`` *dominates* row ``b`` when it
is no worse on every objective and strictly better on one; the *Pareto front* is the set of rows no
other row dominates. Rows with identical objective values do not dominate each other, so ties on
the front are all kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from accel.errors import AccelError
from sim.metrics import MAXIMIZED

__all__ = ["HIGHER_IS_BETTER", "ReportError", "best_points", "directions", "knee_point", "ok_rows",
           "pareto_front", "sensitivity", "swept_params"]

#: Sweep metrics where more is better; every other metric is minimised.
HIGHER_IS_BETTER = MAXIMIZED

_IDENTITY = ("point", "key", "workload", "arch", "params", "status", "reason")


class ReportError(AccelError):
    """A sweep result cannot be analysed or reported (a missing column, no usable rows)."""


def directions(objectives: Sequence[str]) -> tuple[str, ...]:
    """The objectives among ``objectives`` that are maximised (those in :data:`HIGHER_IS_BETTER`)."""
    return tuple(o for o in objectives if o in HIGHER_IS_BETTER)


def swept_params(df: pd.DataFrame) -> list[str]:
    """The swept parameter columns: those between ``arch`` and ``params`` when both exist, otherwise
    every column whose name is a dotted path (``array.rows``)."""
    columns = list(df.columns)
    if "arch" in columns and "params" in columns and columns.index("arch") < columns.index("params"):
        return columns[columns.index("arch") + 1:columns.index("params")]
    return [c for c in columns if "." in str(c) and c not in _IDENTITY]


def ok_rows(df: pd.DataFrame, objectives: Sequence[str] = ()) -> pd.DataFrame:
    """The rows whose ``status`` is ``ok`` (all rows if there is no ``status`` column) and whose
    ``objectives`` are all finite numbers."""
    _check_columns(df, objectives)
    rows = df if "status" not in df.columns else df[df["status"] == "ok"]
    if objectives:
        values = rows[list(objectives)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        rows = rows[np.isfinite(values).all(axis=1)]
    return rows


def pareto_front(df: pd.DataFrame, objectives: Sequence[str], *, maximize: Sequence[str] = (),
                 by: Sequence[str] = ()) -> pd.DataFrame:
    """The non-dominated ``ok`` rows of ``df`` for ``objectives`` (two or three columns), sorted by the
    first objective (best first), with their original index.

    ``maximize`` names the objectives where more is better. ``by`` names columns (e.g.
    ``("workload",)``) within whose groups the front is taken separately: comparing the latency of
    two different workloads says nothing about the designs.

    Cost: O(n log n) for both. Two objectives take one sort and a running minimum (vectorised);
    three take a lexicographic sort and one pass with a Fenwick tree of prefix minima (a Python loop:
    about a second for 100k rows, whatever the shape of the front).
    """
    objectives = list(objectives)
    if len(objectives) not in (2, 3):
        raise ReportError(f"A Pareto front needs two or three objectives, not {len(objectives)} ({objectives})")
    if len(set(objectives)) != len(objectives):
        raise ReportError(f"Objectives must be distinct, not {objectives}")
    unknown = [m for m in maximize if m not in objectives]
    if unknown:
        raise ReportError(f"maximize must name objectives ({', '.join(objectives)}), not {', '.join(unknown)}")
    _check_columns(df, by)
    rows = ok_rows(df, objectives)
    if rows.empty:
        return rows
    signs = np.array([-1.0 if o in maximize else 1.0 for o in objectives])
    values = rows[objectives].to_numpy(dtype=float) * signs
    keep = np.zeros(len(rows), dtype=bool)
    whole = [np.arange(len(rows))]
    groups = rows.groupby(list(by), sort=False, dropna=False).indices.values() if by else whole
    for positions in groups:
        keep[positions[_non_dominated(values[positions])]] = True
    front = rows[keep]
    return front.iloc[np.lexsort(values[keep].T[::-1])]


def _non_dominated(values: np.ndarray) -> np.ndarray:
    """Positions (ascending) of the non-dominated rows of ``values`` (n x 2 or n x 3, all minimised)."""
    n, k = values.shape
    if k == 2:
        order = np.lexsort(values.T[::-1])  # by the first column, then the second
        ranked = values[order]
        first, second = ranked[:, 0], ranked[:, 1]
        starts = np.flatnonzero(np.r_[True, first[1:] != first[:-1]])  # groups of equal first objective
        group_min = np.minimum.reduceat(second, starts)
        # the best second objective among rows with a strictly smaller first objective
        before = np.r_[np.inf, np.minimum.accumulate(group_min)[:-1]]
        sizes = np.diff(np.r_[starts, n])
        kept = (second < np.repeat(before, sizes)) & (second == np.repeat(group_min, sizes))
        return np.sort(order[kept])
    # Three objectives: exact duplicates share their fate, so work on the distinct rows, which
    # np.unique returns in lexicographic order. A row is dominated iff an earlier distinct row is no
    # worse on the second and third objectives (it is no worse on the first by the order): a Fenwick
    # tree over the ranks of the second objective keeps the least third objective seen so far.
    unique, inverse = np.unique(values, axis=0, return_inverse=True)
    ranks = np.searchsorted(np.unique(unique[:, 1]), unique[:, 1]) + 1
    tree = [np.inf] * (int(ranks.max()) + 1)
    dominated = np.zeros(len(unique), dtype=bool)
    for i, (rank, third) in enumerate(zip(ranks.tolist(), unique[:, 2].tolist(), strict=True)):
        j, least = rank, np.inf
        while j > 0:  # least third objective among earlier rows with second objective <= this one's
            least = min(least, tree[j])
            j -= j & -j
        dominated[i] = least <= third
        j = rank
        while j < len(tree):
            tree[j] = min(tree[j], third)
            j += j & -j
    return np.flatnonzero(~dominated[inverse.ravel()])


def best_points(df: pd.DataFrame, objectives: Sequence[str], *, maximize: Sequence[str] = (),
                by: Sequence[str] = ()) -> pd.DataFrame:
    """The best ``ok`` row for each objective (the first in frame order among equals): one row per
    objective (per group of ``by``), with a leading column ``objective`` naming it."""
    pieces = []
    for objective in objectives:
        _check_columns(df, by)
        rows = ok_rows(df, [objective])
        if rows.empty:
            continue
        values = rows[objective].astype(float)
        if objective in maximize:
            values = -values
        if by:
            best = values.groupby([rows[c] for c in by], sort=False, dropna=False).idxmin().to_list()
        else:
            best = [values.idxmin()]
        picked = rows.loc[best].copy()
        picked.insert(0, "objective", objective)
        pieces.append(picked)
    if not pieces:
        return pd.DataFrame(columns=["objective", *df.columns])
    return pd.concat(pieces)


def knee_point(front: pd.DataFrame, objectives: Sequence[str], *, maximize: Sequence[str] = ()) -> object:
    """The index label of the front's knee: the row closest (Euclidean) to the ideal point after each
    objective is scaled to [0, 1] over the front (on a log scale when all its values are positive and
    span more than a factor 100). ``None`` for an empty front."""
    if front.empty:
        return None
    scaled = []
    for objective in objectives:
        values = front[objective].to_numpy(dtype=float)
        if (values > 0).all() and values.max() > 100 * values.min():
            values = np.log10(values)
        if objective in maximize:
            values = -values
        span = values.max() - values.min()
        scaled.append((values - values.min()) / span if span > 0 else np.zeros_like(values))
    distance = np.sqrt(np.square(np.column_stack(scaled)).sum(axis=1))
    return front.index[int(np.argmin(distance))]


def sensitivity(df: pd.DataFrame, objective: str, params: Sequence[str] | None = None, *,
                maximize: bool = False) -> pd.DataFrame:
    """How much ``objective`` depends on each swept parameter, the others held fixed.

    For parameter ``p``, the ``ok`` rows are grouped by the values of every *other* parameter in
    ``params`` (default: :func:`swept_params`) and by ``workload``; within a group only ``p`` varies.
    In each group with at least two values of ``p``, every row gets its *ratio to the group's best*:
    ``objective / best`` (or ``best / objective`` when ``maximize``), so 1 is the best value of ``p``
    for that context and 2 means twice as bad. Rows with a non-positive objective are left out.

    Returns one row per (parameter, value): ``param``, ``value``, ``median_ratio``, ``min_ratio``,
    ``max_ratio`` (over the groups), ``groups`` (how many), and ``spread``: the parameter's median over
    groups of worst / best, the factor by which choosing ``p`` badly costs, the others fixed (1: no
    effect). Parameters sorted by spread, largest first; values in their natural order. Parameters
    with one value, or never varying alone, are left out.
    """
    params = list(swept_params(df) if params is None else params)
    _check_columns(df, params)
    rows = ok_rows(df, [objective])
    rows = rows[rows[objective].astype(float) > 0]
    context = ["workload"] if "workload" in rows.columns else []
    pieces = []
    for param in params:
        others = [p for p in params if p != param] + context
        values = rows[objective].astype(float)
        keys = [rows[c].astype(str) for c in others]
        if keys:
            grouped = values.groupby(keys, sort=False, dropna=False)
            best = grouped.transform("max" if maximize else "min")
            group_id = grouped.ngroup()
        else:
            best = pd.Series(values.max() if maximize else values.min(), index=values.index)
            group_id = pd.Series(0, index=values.index)
        varied = rows[param].astype(str).groupby(group_id).transform("nunique") >= 2
        if not varied.any():
            continue
        ratio = (best / values if maximize else values / best)[varied]
        frame = pd.DataFrame({"value": rows.loc[varied, param], "ratio": ratio, "group": group_id[varied]})
        spread = float(frame.groupby("group")["ratio"].max().median())
        per_value = frame.groupby("value", sort=True)
        table = pd.DataFrame({
            "median_ratio": per_value["ratio"].median(), "min_ratio": per_value["ratio"].min(),
            "max_ratio": per_value["ratio"].max(), "groups": per_value["group"].nunique(),
        }).reset_index()
        table.insert(0, "param", param)
        table["spread"] = spread
        pieces.append(table)
    if not pieces:
        return pd.DataFrame(columns=["param", "value", "median_ratio", "min_ratio", "max_ratio", "groups", "spread"])
    out = pd.concat(pieces, ignore_index=True)
    order = out.groupby("param", sort=False)["spread"].first().sort_values(ascending=False, kind="stable").index
    return pd.concat([out[out["param"] == p] for p in order], ignore_index=True)


def _check_columns(df: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ReportError(f"No column {', '.join(map(repr, missing))} in the results; columns are: "
                          f"{', '.join(map(str, df.columns))}")
