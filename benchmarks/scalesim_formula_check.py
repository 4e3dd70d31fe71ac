#!/usr/bin/env python3
"""Check a closed-form model of SCALE-Sim v3's per-layer compute cycles
against the reference fixtures in ``tests/fixtures/scalesim/``.

Stand-alone (standard library only).  Usage, from the repo root::

    python benchmarks/scalesim_formula_check.py [--fixtures DIR] [--topologies DIR]

Fixture names are ``<topology>_<dataflow>_<R>x<C>.csv`` (SCALE-Sim's own
COMPUTE_REPORT.csv).  The topology CSVs are read from ``--topologies``
(default ``$SCALESIM_DATA`` or ``/work/shared/data/scalesim``).

How SCALE-Sim v3.0.0 counts cycles (scalesim/compute/systolic_compute_*.py,
scalesim/memory/double_buffered_scratchpad_mem.py)
---------------------------------------------------------------------------
A layer is a GEMM  ofmap[M, N] = ifmap[M, K] @ filter[K, N]  with

    M = OH*OW   (ofmap pixels per filter;  OH = (H-FH)//S + 1, no padding)
    K = FH*FW*C_in   (window size)
    N = number of filters
    GEMM topology rows ``name, M, N, K,`` (``-i gemm``) are turned into a
    conv layer H=M, W=K, FH=1, FW=K, C_in=1, filters=N, stride 1, i.e. the
    same M, N, K.

Each dataflow maps two of M, N, K onto the array (rows R x cols C) and
streams the third (``T``) in time:

    ws:  K -> rows, N -> cols, T = M   (weights pre-loaded, R cycles)
    os:  M -> rows, N -> cols, T = K   (no pre-load)
    is:  K -> rows, M -> cols, T = N   (ifmap pre-loaded, R cycles)

and builds a demand matrix with one line per cycle; every fold contributes

    ws, is:  2R + C + T - 2  lines   (R preload + R-1 skew + T + C-1 drain)
    os:       R + C + T - 2  lines   (R-1 + C-1 skew + T)

folds = ceil(rows_dim / R) * ceil(cols_dim / C); folds are run back to back
(no overlap between the drain of one fold and the fill of the next).

The memory model walks the demand lines; line i is issued at cycle
i + stalls_so_far, and SCALE-Sim reports ``Total Cycles`` = the largest ofmap
service cycle, i.e. the 0-based index of the last cycle:

    Total Cycles   = folds * per_fold - 1 + Stall Cycles
    compute cycles = Total Cycles - Stall Cycles = folds * per_fold - 1

(one less than the number of cycles; SCALE-Sim issue #125).  With
InterfaceBandwidth = CALC (the fixtures) the read buffers never stall, so only
the ofmap write buffer could stall.

Utilisation columns (per-fold values averaged with equal weight per fold):

    Mapping Efficiency % = 100 * mean_f(rows_used_f * cols_used_f) / (R*C)
                         = 100 * rows_dim * cols_dim / (ceil(rows_dim/R)*R * ceil(cols_dim/C)*C)
    Compute Util %       = Mapping Efficiency % * T / cyc
        with cyc = 2R + 2C + T - 3 (ws, is)   or   R + C + T - 2 (os)
        (ws/is: SCALE-Sim divides by the fold's demand lines + C - 1, which is
        C - 1 more than the fold really takes; os by exactly the fold length)
    Overall Util %       = 100 * M*N*K / (Total Cycles * R * C)
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

TOPO_FILES = {
    "alexnet": ("alexnet.csv", False),
    "resnet18": ("Resnet18.csv", False),
    "mobilenet": ("mobilenet.csv", False),
    "yolo_tiny": ("yolo_tiny.csv", False),
    "vit_s": ("vit_s.csv", True),
    "gpt2": ("gpt2.csv", True),
}


# --------------------------------------------------------------------------
# the model (paste-able)
# --------------------------------------------------------------------------
def scalesim_layer_gemm(ifmap_h, ifmap_w, filt_h, filt_w, channels, num_filters,
                        stride_h, stride_w=None):
    """(M, N, K) as SCALE-Sim v3 sees a conv layer (no padding)."""
    stride_w = stride_h if stride_w is None else stride_w
    oh = math.ceil((ifmap_h - filt_h + stride_h) / stride_h)
    ow = math.ceil((ifmap_w - filt_w + stride_w) / stride_w)
    return oh * ow, num_filters, filt_h * filt_w * channels


def scalesim_mapping(M, N, K, dataflow):
    """(rows_dim, cols_dim, T) that SCALE-Sim v3 maps onto array rows/cols/time."""
    if dataflow == "ws":
        return K, N, M
    if dataflow == "os":
        return M, N, K
    if dataflow == "is":
        return K, M, N
    raise ValueError(dataflow)


def scalesim_compute_cycles(M, N, K, R, C, dataflow):
    """SCALE-Sim v3 per-layer compute cycles = Total Cycles - Stall Cycles.

    This is SCALE-Sim's 0-based index of the last cycle, i.e. (number of
    cycles) - 1.  Total Cycles = this + Stall Cycles (0 in CALC bandwidth mode).
    """
    sr, sc, t = scalesim_mapping(M, N, K, dataflow)
    folds = math.ceil(sr / R) * math.ceil(sc / C)
    # ws, is: R extra cycles per fold to pre-load the stationary operand
    per_fold = R + C + t - 2 if dataflow == "os" else 2 * R + C + t - 2
    return folds * per_fold - 1


def scalesim_mapping_efficiency(M, N, K, R, C, dataflow):
    """SCALE-Sim v3 'Mapping Efficiency %'."""
    sr, sc, _ = scalesim_mapping(M, N, K, dataflow)
    return 100.0 * sr * sc / (math.ceil(sr / R) * R * math.ceil(sc / C) * C)


def scalesim_compute_util(M, N, K, R, C, dataflow):
    """SCALE-Sim v3 'Compute Util %'."""
    _, _, t = scalesim_mapping(M, N, K, dataflow)
    cyc = R + C + t - 2 if dataflow == "os" else 2 * R + 2 * C + t - 3
    return scalesim_mapping_efficiency(M, N, K, R, C, dataflow) * t / cyc


def scalesim_overall_util(M, N, K, R, C, total_cycles):
    """SCALE-Sim v3 'Overall Util %' (total_cycles = the 'Total Cycles' column)."""
    return 100.0 * M * N * K / (total_cycles * R * C)


# --------------------------------------------------------------------------
# checking
# --------------------------------------------------------------------------
def read_topology(path: Path, gemm: bool):
    layers = []
    lines = path.read_text().splitlines()
    for row in lines[1:]:
        row = row.strip()
        if not row:
            continue
        e = [x.strip() for x in row.split(",")[:-1]]
        if gemm:
            m, n, k = int(e[1]), int(e[2]), int(e[3])
            layers.append((e[0], m, n, k))
        else:
            h, w, fh, fw, ch, nf, s = (int(x) for x in e[1:8])
            layers.append((e[0],) + scalesim_layer_gemm(h, w, fh, fw, ch, nf, s))
    return layers


def read_report(path: Path):
    rows = []
    lines = path.read_text().splitlines()
    header = [h.strip() for h in lines[0].split(",")]
    for line in lines[1:]:
        if line.strip():
            v = [x.strip() for x in line.split(",")]
            rows.append(dict(zip(header, v, strict=True)))
    return rows


def close(a: float, b: float, rel=1e-9) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fixtures", default=str(REPO / "tests" / "fixtures" / "scalesim"))
    ap.add_argument("--topologies",
                    default=os.environ.get("SCALESIM_DATA", "/work/shared/data/scalesim"))
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--include-partial", action="store_true",
                    help="also check *.partial.csv (layers of an unfinished run)")
    a = ap.parse_args(argv)

    pat = re.compile(r"^(?P<topo>.+)_(?P<df>ws|os|is)_(?P<r>\d+)x(?P<c>\d+)(?P<partial>\.partial)?\.csv$")
    fixtures = sorted(p for p in Path(a.fixtures).glob("*.csv")
                      if pat.match(p.name) and (a.include_partial or not pat.match(p.name)["partial"]))
    if not fixtures:
        print("no fixtures found in", a.fixtures)
        return 1
    all_ok = True
    per_df = {}
    print(f"{'fixture':32s} {'layers':>6s} {'compute':>8s} {'total':>6s} {'stall0':>6s} "
          f"{'mapEff':>6s} {'cmpUtil':>7s} {'ovUtil':>6s}")
    for p in fixtures:
        m = pat.match(p.name)
        topo, df, R, C = m["topo"], m["df"], int(m["r"]), int(m["c"])
        fname, gemm = TOPO_FILES[topo]
        layers = read_topology(Path(a.topologies) / fname, gemm)
        report = read_report(p)
        n = len(report)
        ok = dict(compute=0, total=0, stall0=0, mapeff=0, cutil=0, outil=0)
        for row in report:
            lid = int(row["LayerID"])
            name, M, N, K = layers[lid]
            total = int(row["Total Cycles"])
            stall = int(row["Stall Cycles"])
            pred = scalesim_compute_cycles(M, N, K, R, C, df)
            good = pred == total - stall
            ok["compute"] += good
            ok["total"] += (pred + stall == total)
            ok["stall0"] += (stall == 0)
            me = scalesim_mapping_efficiency(M, N, K, R, C, df)
            cu = scalesim_compute_util(M, N, K, R, C, df)
            ou = scalesim_overall_util(M, N, K, R, C, total)
            ok["mapeff"] += close(me, float(row["Mapping Efficiency %"]))
            ok["cutil"] += close(cu, float(row["Compute Util %"]))
            ok["outil"] += close(ou, float(row["Overall Util %"]))
            if a.verbose or not good:
                print(f"   {name:10s} M={M} N={N} K={K}: scalesim={total - stall} "
                      f"formula={pred} {'OK' if good else 'MISMATCH'}")
        print(f"{p.name:32s} {n:6d} " + " ".join(
            f"{ok[k]:>{w}d}" for k, w in
            [("compute", 8), ("total", 6), ("stall0", 6), ("mapeff", 6), ("cutil", 7),
             ("outil", 6)]))
        d = per_df.setdefault(df, [0, 0])
        d[0] += ok["compute"]
        d[1] += n
        if any(ok[k] != n for k in ("compute", "total", "mapeff", "cutil", "outil")):
            all_ok = False
    print()
    for df, (good, n) in sorted(per_df.items()):
        print(f"{df}: compute cycles match on {good}/{n} layers")
    print("ALL MATCH" if all_ok else "SOME MISMATCHES")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
