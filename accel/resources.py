"""FPGA resources and Fmax of a systolic tile as pure functions of its parameters.

:func:`estimate` predicts the LUTs, flip-flops, carry cells, DSP blocks, block RAMs and the
achievable clock of a ``rows x cols`` systolic tile (:class:`rtl.systolic.SystolicArray`) for one
dataflow and FPGA family. The model is fitted, per (family, dataflow, operand formats), from the
synthesis sweep in ``accel/data/fpga_resources.csv`` (written by ``benchmarks/fpga_sweep.py``: yosys
out-of-context synthesis of the bare tile, nextpnr place-and-route for Fmax where the tile fits):

* LUTs, flip-flops and carry cells: least squares on ``1, R, C, R*C, R^2, C^2``: per-PE registers
  and logic grow with ``R*C``, the input skew with ``R^2``, the output de-skew with ``C^2``, the
  control with ``R + C``;
* DSPs and block RAMs: an integer count per PE (one multiplier block per 8x8 MAC on both families),
  so the prediction is exact where the fitted data are;
* Fmax: least squares on ``1, log2(R*C)`` over the points that were placed and routed (the global
  enable's fan-out grows with the tile). Points whose DSPs exceed the largest device (iCE40UP5K has
  8) have no Fmax in the data.

Only formats present in the data can be estimated; others raise :class:`ConfigError`, as does a
family or dataflow the sweep did not cover. The model is the test's subject: ``tests/fpga`` checks it
against synthesis of design points that were not fitted (within 10 % on LUTs and flip-flops, exact
on DSPs).
"""

from __future__ import annotations

import csv
import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from accel.errors import ConfigError
from accel.formats import INT8, INT32, NumberFormat
from accel.hardware import Dataflow
from accel.hardware import SystolicArray as ArrayDescription

__all__ = ["ResourceEstimate", "estimate", "estimate_array", "FIT_POINTS", "HELD_OUT_POINTS", "CSV_COLUMNS",
           "default_data_path", "fitted_keys"]

FIT_POINTS: tuple[tuple[int, int], ...] = ((1, 1), (1, 4), (2, 2), (2, 4), (4, 1), (2, 8), (4, 4), (3, 6),
                                           (6, 3), (8, 2), (8, 8))
"""``(rows, cols)`` of the tiles the model is fitted from."""

HELD_OUT_POINTS: tuple[tuple[int, int], ...] = ((3, 3), (5, 4))
"""``(rows, cols)`` never fitted: the test synthesizes them and compares with :func:`estimate`."""

CSV_COLUMNS = ("family", "dataflow", "rows", "cols", "a_format", "b_format", "acc_format", "luts", "flip_flops",
               "carry", "dsp", "bram", "fmax_mhz", "device", "synth_command")
"""Columns of the sweep's CSV, one row per (family, dataflow, design point)."""


@dataclass(frozen=True)
class ResourceEstimate:
    """Predicted resources of one tile; ``fmax_mhz`` is ``None`` where no point could be placed."""

    luts: int
    flip_flops: int
    carry: int
    dsp: int
    bram: int
    fmax_mhz: float | None

    @property
    def clock_hz(self) -> float | None:
        """The predicted achievable clock in Hz."""
        return None if self.fmax_mhz is None else self.fmax_mhz * 1e6


def default_data_path() -> Path:
    """``accel/data/fpga_resources.csv`` inside the installed package."""
    return Path(__file__).with_name("data") / "fpga_resources.csv"


def _features(rows: int, cols: int) -> list[float]:
    return [1.0, rows, cols, rows * cols, rows * rows, cols * cols]


@dataclass(frozen=True)
class _Fit:
    luts: tuple[float, ...]
    flip_flops: tuple[float, ...]
    carry: tuple[float, ...]
    dsp_per_pe: int
    bram_per_pe: int
    fmax: tuple[float, float] | None


_Key = tuple[str, str, str, str, str]  # family, dataflow, a_format, b_format, acc_format


@functools.lru_cache(maxsize=4)
def _fits(path: Path) -> dict[_Key, _Fit]:
    try:
        with path.open(newline="") as handle:
            records = list(csv.DictReader(handle))
    except OSError as exc:
        raise ConfigError(f"FPGA resource data {path} cannot be read: {exc}") from None
    groups: dict[_Key, list[dict[str, str]]] = {}
    for record in records:
        key = (record["family"], record["dataflow"], record["a_format"], record["b_format"], record["acc_format"])
        groups.setdefault(key, []).append(record)
    fits = {}
    for key, group in groups.items():
        x = np.array([_features(int(r["rows"]), int(r["cols"])) for r in group])

        def solve(column: str, x: np.ndarray = x, group: list[dict[str, str]] = group) -> tuple[float, ...]:
            y = np.array([float(r[column]) for r in group])
            return tuple(float(v) for v in np.linalg.lstsq(x, y, rcond=None)[0])

        pes = [int(r["rows"]) * int(r["cols"]) for r in group]
        dsp_per_pe = {int(r["dsp"]) / pe for r, pe in zip(group, pes, strict=True)}
        bram_per_pe = {int(r["bram"]) / pe for r, pe in zip(group, pes, strict=True)}
        placed = [(math.log2(pe), float(r["fmax_mhz"])) for r, pe in zip(group, pes, strict=True) if r["fmax_mhz"]]
        fmax = None
        if len(placed) >= 2:
            slope, intercept = np.polyfit([p[0] for p in placed], [p[1] for p in placed], 1)
            fmax = (float(intercept), float(slope))
        elif placed:
            fmax = (placed[0][1], 0.0)
        fits[key] = _Fit(solve("luts"), solve("flip_flops"), solve("carry"),
                         _per_pe(dsp_per_pe, key, "DSP"), _per_pe(bram_per_pe, key, "BRAM"), fmax)
    return fits


def _per_pe(ratios: set[float], key: _Key, what: str) -> int:
    if len(ratios) != 1 or not float(next(iter(ratios))).is_integer():
        raise ConfigError(f"FPGA resource data for {'/'.join(key)} must have a whole number of {what} blocks "
                          f"per PE at every point, found {sorted(ratios)}")
    return int(next(iter(ratios)))


def fitted_keys(data_path: Path | str | None = None) -> list[tuple[str, str, str, str, str]]:
    """The (family, dataflow, a_format, b_format, acc_format) combinations the data cover."""
    return sorted(_fits(Path(data_path) if data_path else default_data_path()))


def estimate(rows: int, cols: int, *, dataflow: Dataflow | str = Dataflow.WS, family: str = "ice40",
             a_format: NumberFormat | str = INT8, b_format: NumberFormat | str = INT8,
             acc_format: NumberFormat | str = INT32, data_path: Path | str | None = None) -> ResourceEstimate:
    """Predicted resources and Fmax of a ``rows x cols`` systolic tile on ``family``.

    Raises :class:`ConfigError` for non-positive sizes or a (family, dataflow, formats) combination
    that the data (default :func:`default_data_path`) do not cover.
    """
    for name, value in (("rows", rows), ("cols", cols)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"Systolic array {name} must be a positive integer, not {value!r}")
    flow = dataflow if isinstance(dataflow, Dataflow) else Dataflow.parse(dataflow)
    names = tuple(f.name if isinstance(f, NumberFormat) else NumberFormat.parse(str(f)).name
                  for f in (a_format, b_format, acc_format))
    key = (str(family).lower(), flow.value, *names)
    fits = _fits(Path(data_path) if data_path else default_data_path())
    if key not in fits:
        covered = "; ".join("/".join(k) for k in sorted(fits))
        raise ConfigError(f"FPGA resource model covers (family/dataflow/a/b/acc) {covered}, not {'/'.join(key)}")
    fit = fits[key]
    feats = _features(rows, cols)

    def poly(coefficients: tuple[float, ...]) -> int:
        return max(0, round(sum(c * f for c, f in zip(coefficients, feats, strict=True))))

    fmax = None
    if fit.fmax is not None:
        fmax = round(max(1.0, fit.fmax[0] + fit.fmax[1] * math.log2(rows * cols)), 2)
    return ResourceEstimate(poly(fit.luts), poly(fit.flip_flops), poly(fit.carry), fit.dsp_per_pe * rows * cols,
                            fit.bram_per_pe * rows * cols, fmax)


def estimate_array(array: ArrayDescription, *, family: str = "ice40", dataflow: Dataflow | None = None,
                   data_path: Path | str | None = None) -> ResourceEstimate:
    """:func:`estimate` for an :class:`accel.hardware.SystolicArray` (its first dataflow by default)."""
    return estimate(array.rows, array.cols, dataflow=dataflow or array.dataflows[0], family=family,
                    a_format=array.input_format, b_format=array.weight_format,
                    acc_format=array.accumulator_format, data_path=data_path)
