"""Tile-outer mappings priced as arrays: many candidate tiles of one layer at once.

:func:`tile_outer_costs` gives the same :class:`~mapper.search.Cost` as pricing each tile with the
scalar closed form (``mapper.search._tile_outer_cost``), bit for bit: it runs the same arithmetic,
in the same order, on numpy arrays with one entry per tile. The closed form's structure is fixed:
along ``b``, ``n`` and ``m`` a tile has at most two distinct sizes (the full tiles and the remainder),
so a layer has at most 8 distinct output tile shapes, taken in the scalar order (``b``, then ``n``,
then ``m``) with a mask for the shapes a tile does not have; along ``k`` the full tiles and the
remainder give at most five runs of equal steps (first full, middle full, last full, the remainder
as first or as last). Every compute of every tile is priced by the datasheet's closed forms on whole
arrays at once (:func:`accel.timing.steady_compute_cycles`, :func:`accel.energy.compute_energy_function`,
elementwise), each distinct transfer once through the search's memoised transfers (``_Loads``, with
the rows they move, for a DMA with a request structure), so the datasheet stays the only source of
cycles and energy. Measured (ResNet-50 on gemmini): with the search's bound pruning a round prices
about 8 tiles, too few for the arrays' fixed cost, so the scalar form stays the default
(``mapper.search._VECTORIZED``); vectorising the bounds of a round's candidates measured the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from accel.hardware import Dataflow
from accel.timing import steady_compute_cycles
from mapper.plan import Tile
from mapper.schedules import Operands

__all__ = ["tile_outer_costs"]


def _transfers(keys: np.ndarray, mask: np.ndarray,
               price: Callable[..., tuple[int, int, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(size, cycles, pJ)`` of ``price(*row)`` for every row of ``keys`` where ``mask`` holds (0
    elsewhere), priced once per distinct row (``price``: the search's memoised ``_Loads``)."""
    sizes = np.zeros(mask.shape, dtype=np.int64)
    cycles = np.zeros(mask.shape, dtype=np.float64)
    energy = np.zeros(mask.shape, dtype=np.float64)
    rows = keys[mask].tolist()
    if rows:
        distinct = dict.fromkeys(map(tuple, rows))
        for row in distinct:
            distinct[row] = price(*row)
        priced = [distinct[r] for r in map(tuple, rows)]
        sizes[mask] = [p[0] for p in priced]
        cycles[mask] = [p[1] for p in priced]
        energy[mask] = [p[2] for p in priced]
    return sizes, cycles, energy


def tile_outer_costs(pricer, loads, ops: Operands, tiles: Sequence[Tile], dataflow: Dataflow,  # noqa: ANN001
                     ) -> list[tuple[float, float, float, int]]:
    """``(cycles, energy_pj, dram_bytes, steps)`` of each tile, before static energy (see the module
    docstring); ``pricer`` is ``mapper.search``'s memoised datasheet pricer of the design, ``loads`` the
    search's memoised transfers of ``ops`` on it (``mapper.search._Loads``)."""
    g = ops.gemm
    n = len(tiles)
    dims = np.array([(t.b, t.n, t.m, t.k) for t in tiles], dtype=np.int64).reshape(n, 4)
    extents = np.array([g.batch, g.n, g.m, g.k], dtype=np.int64)
    full, rest = extents // dims, extents % dims
    # per dimension, slot 0: the full tiles (size, count), slot 1: the remainder (rest, 1)
    size = np.stack([dims, rest], axis=2)  # n x 4 x 2
    count = np.stack([full, np.ones_like(full)], axis=2)
    present = np.stack([full > 0, rest > 0], axis=2)
    # the 8 output tile shapes in the scalar order: b, then n, then m
    bi, ni, mi = (np.array(x) for x in zip(*[(b, q, m) for b in (0, 1) for q in (0, 1) for m in (0, 1)], strict=True))
    shape_valid = present[:, 0, bi] & present[:, 1, ni] & present[:, 2, mi]  # n x 8
    shape_count = np.where(shape_valid, count[:, 0, bi] * count[:, 1, ni] * count[:, 2, mi], 0)
    sb, sn, sm = size[:, 0, bi], size[:, 1, ni], size[:, 2, mi]
    # the k runs in order: first full, middle full, last full, the remainder alone, after full tiles
    va, vb = present[:, 3, 0], present[:, 3, 1]
    cka = count[:, 3, 0]
    a_tail = va & ~vb & (cka - 1 > 0)
    a_mid = cka - 1 - a_tail
    run_valid = np.stack([va, va & (a_mid > 0), a_tail, vb & ~va, vb & va], axis=1)  # n x 5
    one = np.ones(n, dtype=np.int64)
    run_times = np.stack([one, a_mid, one, one, one], axis=1)
    run_k = np.stack([size[:, 3, 0]] * 3 + [size[:, 3, 1]] * 2, axis=1)
    run_acc = np.array([0, 1, 1, 0, 1], dtype=np.int64)
    run_store = np.stack([~vb & (cka == 1), np.zeros(n, dtype=bool), np.ones(n, dtype=bool),
                          np.ones(n, dtype=bool), np.ones(n, dtype=bool)], axis=1)
    valid = shape_valid[:, :, None] & run_valid[:, None, :]  # n x 8 x 5
    full_shape = valid.shape
    cb_ = np.broadcast_to(sb[:, :, None], full_shape)
    cn_ = np.broadcast_to(sn[:, :, None], full_shape)
    cm_ = np.broadcast_to(sm[:, :, None], full_shape)
    ck_ = np.broadcast_to(run_k[:, None, :], full_shape)
    acc = np.broadcast_to(run_acc[None, None, :], full_shape)
    # every compute of every tile by the datasheet's closed forms, elementwise (sizes of 0 where a tile
    # has no such shape or run: masked below)
    array_cycles = steady_compute_cycles(pricer.arch, dataflow, cm_, ck_, cn_, cb_).astype(np.float64)
    array_pj = pricer.compute_energy(dataflow, cm_, ck_, cn_, cb_, acc, ops.sparsity)
    # each transfer priced with the rows it moves in (what a DMA with a request structure issues)
    x_sizes, x_cycles, x_pj = _transfers(np.stack([cb_, cm_, ck_], axis=-1), valid, loads.x)
    if ops.w is not None:
        w_sizes, w_cycles, w_pj = _transfers(np.stack([cb_, ck_, cn_], axis=-1), valid, loads.w)
    else:
        w_sizes, w_cycles, w_pj = np.zeros(full_shape, dtype=np.int64), np.zeros(full_shape), np.zeros(full_shape)
    out_sizes, store_cycles, store_pj = _transfers(np.stack([sb, sm, sn], axis=-1), shape_valid, loads.out)
    times = np.where(valid, np.broadcast_to(run_times[:, None, :], full_shape), 0)
    ct = shape_count[:, :, None] * times  # n x 8 x 5, 0 where not run
    # energy: summed left to right in the scalar order (per shape: its stores, then per run the compute,
    # the input load, the weight load), so the float result is the same bit for bit
    terms = np.concatenate([
        (shape_count * store_pj)[:, :, None],
        np.stack([ct * array_pj, ct * x_pj, ct * w_pj], axis=3).reshape(n, 8, 15)], axis=2).reshape(n, -1)
    energy = np.cumsum(terms, axis=1)[:, -1] if terms.shape[1] else np.zeros(n)
    moved = (shape_count * out_sizes).sum(axis=1) + (ct * (x_sizes + w_sizes)).sum(axis=(1, 2))
    loads = x_cycles + w_cycles
    # each run overlaps the loads of the next run of its shape (the first after the last)
    following = np.full(full_shape, np.nan)
    for offset in range(1, 6):
        later = np.roll(valid, -offset, axis=2)
        later_loads = np.roll(loads, -offset, axis=2)
        following = np.where(np.isnan(following) & later, later_loads, following)
    stores = np.where(run_store[:, None, :], store_cycles[:, :, None], 0.0)
    term = shape_count[:, :, None] * ((times - 1) * np.maximum(array_cycles, loads)
                                      + np.maximum(array_cycles, stores + following))
    cycles = np.where(valid, term, 0.0).sum(axis=(1, 2))
    steps = ct.sum(axis=(1, 2))
    rows = np.arange(n)
    first_shape = np.argmax(shape_valid, axis=1)
    last_shape = 7 - np.argmax(shape_valid[:, ::-1], axis=1)
    first_run = np.argmax(run_valid, axis=1)
    last_run = 4 - np.argmax(run_valid[:, ::-1], axis=1)
    first_loads = loads[rows, first_shape, first_run]
    last_array = array_cycles[rows, last_shape, last_run]
    last_store = stores[rows, last_shape, last_run]
    wrap_loads = loads[rows, last_shape, first_run]
    cycles = cycles + (first_loads + last_array + last_store - np.maximum(last_array, last_store + wrap_loads))
    return list(zip(cycles.tolist(), energy.tolist(), moved.astype(np.float64).tolist(), steps.tolist(), strict=True))

