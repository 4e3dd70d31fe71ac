"""FPGA devices, and the resources and Fmax of a systolic tile as pure functions of its parameters.

The device table (:data:`DEVICES`, per :class:`FpgaFamily`) is the one every FPGA flow uses: the
synthesis flow (:mod:`rtl.fpga.synth`) chooses and checks devices from it, board builds check a
board's device against it before running any tool, and :func:`fits` checks a design description
against it (the sweep constraint). Capacities are the vendors' datasheet figures (Lattice iCE40
UltraPlus Family Data Sheet FPGA-DS-02008 Table 1.1; ECP5 and ECP5-5G Family Data Sheet
FPGA-DS-02012 Table 1.1). LUTs are counted as the datasheets count them (:attr:`Device.luts`):
iCE40 logic cells (a LUT4, a carry and a flip-flop each), ECP5 LUT4s (a CCU2C carry cell takes
two), Xilinx 6-input LUTs.

:func:`estimate` predicts the LUTs, flip-flops, carry cells, DSP blocks, block RAMs and the
achievable clock of a ``rows x cols`` systolic tile (:class:`rtl.systolic.SystolicArray`) for one
dataflow and FPGA family. The model is fitted, per (family, dataflow, operand formats), from the
synthesis sweep in ``accel/data/fpga_resources.csv`` (written by ``benchmarks/fpga_sweep.py``: yosys
out-of-context synthesis of the bare tile, nextpnr place-and-route for Fmax where the tile fits):

* LUTs (as the device counts them), LUT primitives, flip-flops and carry cells: least squares on
  ``1, R, C, R*C, R^2, C^2``: per-PE registers
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
from enum import Enum
from pathlib import Path

import numpy as np

from accel.errors import ConfigError
from accel.formats import INT8, INT32, NumberFormat
from accel.hardware import Accelerator, Dataflow
from accel.hardware import SystolicArray as ArrayDescription

__all__ = ["FpgaFamily", "Device", "DEVICES", "device", "dsp_blocks", "ResourceEstimate", "estimate",
           "estimate_array", "fits", "FIT_POINTS", "HELD_OUT_POINTS", "CSV_COLUMNS", "default_data_path",
           "fitted_keys"]


class FpgaFamily(Enum):
    """FPGA families the flows target."""

    ICE40 = "ice40"
    ECP5 = "ecp5"
    XILINX = "xilinx"

    @classmethod
    def parse(cls, text: str | FpgaFamily) -> FpgaFamily:
        """The family named ``text``; :class:`ConfigError` otherwise."""
        if isinstance(text, FpgaFamily):
            return text
        try:
            return cls(str(text).strip().lower())
        except ValueError:
            raise ConfigError(f"FPGA family must be one of 'ice40', 'ecp5', 'xilinx', not {text!r}") from None


@dataclass(frozen=True)
class Device:
    """One device: its nextpnr name and package, and its capacity.

    ``luts`` is what the datasheet calls LUTs (iCE40 logic cells, ECP5 LUT4s, Xilinx LUT6s);
    ``flip_flops`` is ``None`` where every flip-flop sits in a logic cell (iCE40: a logic cell holds
    one LUT4, a carry and one flip-flop, so flip-flops are part of ``luts``); ``dsps`` counts hard
    multipliers (SB_MAC16, MULT18X18D); ``brams`` block RAMs (SB_RAM40_4K, DP16KD). A capacity of 0
    means unknown (the Xilinx family-wide estimate, which is never placed).
    """

    family: FpgaFamily
    name: str
    package: str
    luts: int
    flip_flops: int | None
    dsps: int
    brams: int

    @property
    def label(self) -> str:
        return f"{self.family.value} {self.name}"


DEVICES: dict[FpgaFamily, tuple[Device, ...]] = {
    # iCE40UP5K: 5280 logic cells, 8 sysDSP (SB_MAC16), 30 sysMEM EBR of 4 Kbit (FPGA-DS-02008 Table 1.1).
    FpgaFamily.ICE40: (Device(FpgaFamily.ICE40, "up5k", "sg48", 5280, None, 8, 30),),
    # LFE5U-25F/45F/85F: 24k/44k/84k LUT4 (one flip-flop per LUT4), 28/72/156 18x18 multipliers,
    # 56/108/208 EBR of 18 Kbit (FPGA-DS-02012 Table 1.1; the LUT4 counts are nextpnr's TRELLIS_COMB bels).
    FpgaFamily.ECP5: (Device(FpgaFamily.ECP5, "25k", "CABGA381", 24288, 24288, 28, 56),
                      Device(FpgaFamily.ECP5, "45k", "CABGA381", 43848, 43848, 72, 108),
                      Device(FpgaFamily.ECP5, "85k", "CABGA381", 83640, 83640, 156, 208)),
    FpgaFamily.XILINX: (Device(FpgaFamily.XILINX, "xc7", "", 0, 0, 0, 0),),
}
"""Devices per family, smallest first (Xilinx: a family-wide estimate, not placed, capacity unknown)."""

_DSP_OPERAND_BITS = {FpgaFamily.ICE40: (16, 16), FpgaFamily.ECP5: (18, 18), FpgaFamily.XILINX: (25, 18)}
"""Widest (a, b) operands of one hard multiplier: SB_MAC16 16x16, MULT18X18D 18x18, DSP48E1 25x18."""


def device(family: FpgaFamily | str, name: str) -> Device:
    """The device ``name`` of ``family``; :class:`ConfigError` naming the known ones otherwise."""
    fam = FpgaFamily.parse(family)
    for dev in DEVICES[fam]:
        if dev.name == name:
            return dev
    names = ", ".join(repr(d.name) for d in DEVICES[fam])
    raise ConfigError(f"{fam.value} device must be one of {names}, not {name!r}")


def dsp_blocks(family: FpgaFamily | str, a_bits: int, b_bits: int, product_bits: int | None = None) -> int:
    """Hard multiplier blocks one ``a_bits x b_bits`` multiplier takes when synthesis maps it to DSPs.

    Yosys splits a wide multiplier into tiles of the block's operand widths (``mul2dsp``), so the
    count is ``ceil(a / A) * ceil(b / B)`` with the larger operand on the wider port. When only the
    low ``product_bits`` of the product are used (yosys' ``wreduce`` trims the rest), a tile whose
    lowest product bit is above them is dropped: a 32 x 32 multiply kept to 32 bits takes three
    18 x 18 blocks, not four.
    """
    wide, narrow = _DSP_OPERAND_BITS[FpgaFamily.parse(family)]
    a, b = max(a_bits, b_bits), min(a_bits, b_bits)
    if product_bits is None:
        return math.ceil(a / wide) * math.ceil(b / narrow)
    return sum(1 for i in range(math.ceil(a / wide)) for j in range(math.ceil(b / narrow))
               if i * wide + j * narrow < product_bits)

FIT_POINTS: tuple[tuple[int, int], ...] = ((1, 1), (1, 4), (2, 2), (2, 4), (4, 1), (2, 8), (4, 4), (3, 6),
                                           (6, 3), (8, 2), (8, 8))
"""``(rows, cols)`` of the tiles the model is fitted from."""

HELD_OUT_POINTS: tuple[tuple[int, int], ...] = ((3, 3), (5, 4))
"""``(rows, cols)`` never fitted: the test synthesizes them and compares with :func:`estimate`."""

CSV_COLUMNS = ("family", "dataflow", "rows", "cols", "a_format", "b_format", "acc_format", "luts", "lut_primitives",
               "flip_flops", "carry", "dsp", "bram", "fmax_mhz", "device", "synth_command")
"""Columns of the sweep's CSV, one row per (family, dataflow, design point)."""


@dataclass(frozen=True)
class ResourceEstimate:
    """Predicted resources of one tile; ``fmax_mhz`` is ``None`` where no point could be placed.

    ``luts`` is the logic as the family's datasheet counts LUTs (see :class:`Device`);
    ``lut_primitives`` the LUT cells alone (without the carry cells' LUTs on ECP5 or the cells
    holding only a flip-flop or a carry on iCE40).
    """

    family: FpgaFamily
    luts: int
    lut_primitives: int
    flip_flops: int
    carry: int
    dsp: int
    bram: int
    fmax_mhz: float | None

    @property
    def clock_hz(self) -> float | None:
        """The predicted achievable clock in Hz."""
        return None if self.fmax_mhz is None else self.fmax_mhz * 1e6

    def fit_problems(self, dev: Device) -> list[str]:
        """What of ``dev`` the tile overflows (empty if it fits); see :func:`fit_problems`."""
        return fit_problems(dev, luts=self.luts, flip_flops=self.flip_flops, dsp=self.dsp, bram=self.bram)

    def fits(self, dev: Device | str | None = None) -> bool:
        """Whether the tile fits ``dev`` (a device of its family or its name; default: the largest)."""
        chosen = DEVICES[self.family][-1] if dev is None else dev if isinstance(dev, Device) \
            else device(self.family, dev)
        return not self.fit_problems(chosen)


def fit_problems(dev: Device, *, luts: int, flip_flops: int, dsp: int, bram: int) -> list[str]:
    """Each resource a design needs more of than ``dev`` has, as ``"256 DSPs (up5k has 8)"``.

    A capacity of 0 is unknown and never refused. On iCE40 flip-flops are not checked apart from
    ``luts`` (they sit in logic cells, which iCE40's ``luts`` already counts).
    """
    wanted = [("DSPs", dsp, dev.dsps), ("LUTs", luts, dev.luts), ("block RAMs", bram, dev.brams)]
    if dev.flip_flops is not None:
        wanted.append(("flip-flops", flip_flops, dev.flip_flops))
    return [f"{need} {what} ({dev.name} has {have})" for what, need, have in wanted if have and need > have]


def default_data_path() -> Path:
    """``accel/data/fpga_resources.csv`` inside the installed package."""
    return Path(__file__).with_name("data") / "fpga_resources.csv"


def _features(rows: int, cols: int) -> list[float]:
    return [1.0, rows, cols, rows * cols, rows * rows, cols * cols]


@dataclass(frozen=True)
class _Fit:
    luts: tuple[float, ...]
    lut_primitives: tuple[float, ...]
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
        fits[key] = _Fit(solve("luts"), solve("lut_primitives"), solve("flip_flops"), solve("carry"),
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


def estimate(rows: int, cols: int, *, dataflow: Dataflow | str = Dataflow.WS, family: FpgaFamily | str = "ice40",
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
    fam = FpgaFamily.parse(family)
    names = tuple(f.name if isinstance(f, NumberFormat) else NumberFormat.parse(str(f)).name
                  for f in (a_format, b_format, acc_format))
    key = (fam.value, flow.value, *names)
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
    return ResourceEstimate(fam, poly(fit.luts), poly(fit.lut_primitives), poly(fit.flip_flops), poly(fit.carry),
                            fit.dsp_per_pe * rows * cols, fit.bram_per_pe * rows * cols, fmax)


def estimate_array(array: ArrayDescription, *, family: FpgaFamily | str = "ice40", dataflow: Dataflow | None = None,
                   data_path: Path | str | None = None) -> ResourceEstimate:
    """:func:`estimate` for an :class:`accel.hardware.SystolicArray` (its first dataflow by default)."""
    return estimate(array.rows, array.cols, dataflow=dataflow or array.dataflows[0], family=family,
                    a_format=array.input_format, b_format=array.weight_format,
                    acc_format=array.accumulator_format, data_path=data_path)


def fits(design: Accelerator | ArrayDescription, dev: Device | str, *, family: FpgaFamily | str | None = None,
         data_path: Path | str | None = None) -> bool:
    """Whether the systolic tile of ``design`` (an accelerator or its array) fits device ``dev``: the
    sweep constraint.

    ``dev`` is a :class:`Device` or a device name (``"up5k"``, ``"25k"``, ...; then ``family``
    says whose, default the one family having that name). The tile's resources come from
    :func:`estimate`, for each dataflow the array lists (each is a tile of its own in ``rtl``, so
    this is the fit of the largest of them); a design the model does not cover (an ``is`` dataflow,
    formats never synthesized) raises :class:`ConfigError`.
    """
    array = design.array if isinstance(design, Accelerator) else design
    if isinstance(dev, str):
        matches = [d for fam, devs in DEVICES.items() for d in devs
                   if d.name == dev and (family is None or fam is FpgaFamily.parse(family))]
        if not matches:
            raise ConfigError(f"FPGA device must be one of "
                              f"{', '.join(repr(d.name) for devs in DEVICES.values() for d in devs)}, not {dev!r}")
        dev = matches[0]
    return all(estimate_array(array, family=dev.family, dataflow=flow, data_path=data_path).fits(dev)
               for flow in array.dataflows)
