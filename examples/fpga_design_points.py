"""FPGA design points: LUTs, flip-flops, DSPs and Fmax against latency for small arrays on fpga-small.

For square arrays from 2x2 to 8x8 around the ``fpga-small`` preset, the resource model
(:func:`accel.resources.estimate`, fitted from yosys/nextpnr runs) predicts the tile's resources and
Fmax on the chosen family; each design point is then simulated *at its predicted Fmax* (a zip group
ties ``array.size`` to ``clock_hz``), so a bigger array's lower clock counts against its extra PEs.
The workload is a small keyword-spotting-sized MLP (a SCALE-Sim GEMM topology written to a temporary
file), the scale of model such a board runs. Prints one line per design point, with the smallest
device of the family the tile fits (``none`` when it fits none: an 8x8 needs 64 DSPs, more than the
28 of an ECP5 25k).

    python examples/fpga_design_points.py                 # ECP5
    python examples/fpga_design_points.py --family ice40  # iCE40 (no Fmax where the DSPs do not fit)
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from accel.resources import DEVICES, FpgaFamily, estimate
from sim.sweep import Space, run_sweep

SIZES = [2, 3, 4, 6, 8]
# batch 16 of 40 MFCC x 10 frames in, three hidden layers, 12 keywords out (M = batch, N = outputs, K = inputs)
MLP = "Layer,M,N,K,\nfc1,16,256,400,\nfc2,16,256,256,\nfc3,16,256,256,\nfc4,16,12,256,\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", default="ecp5", choices=("ecp5", "ice40"))
    parser.add_argument("--out", help="write the table as CSV here")
    args = parser.parse_args()
    sizes, clocks = [], []
    for n in SIZES:
        fmax = estimate(n, n, family=args.family).fmax_mhz
        if fmax is not None:  # no placed design point of this size on the family
            sizes.append(n)
            clocks.append(fmax * 1e6)
    with tempfile.TemporaryDirectory() as tmp:
        topology = Path(tmp) / "kws_mlp.csv"
        topology.write_text(MLP)
        space = Space(base="fpga-small", zip=[{"array.size": sizes, "clock_hz": clocks}], fpga_family=args.family)
        frame = run_sweep(space, [str(topology)], max_workers=1)
    table = frame[["array.size", "luts", "flip_flops", "dsp", "fmax_mhz", "total_cycles", "latency_s",
                   "energy_j"]].copy()
    table["inferences_per_s"] = 1 / table["latency_s"]
    devices = DEVICES[FpgaFamily.parse(args.family)]
    table["fits"] = [next((d.name for d in devices if estimate(int(n), int(n), family=args.family).fits(d)), "none")
                     for n in table["array.size"]]
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if args.out:
        table.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
