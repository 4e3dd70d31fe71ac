"""CACTI 7 SRAM areas at 45 nm, and the SRAM constants of ``accel/tech/area_45nm.toml`` fitted to them.

Runs a CACTI 7 binary (build it from the HewlettPackard/cacti repository with ``make``; pass its
folder with ``--cacti``) on a grid of scratchpad-like SRAMs (plain RAM, one way, 45 nm,
``itrs-hp`` cells and periphery, everything else as in CACTI's shipped ``cache.cfg``): sizes 16 KiB
to 4 MiB, 16- and 64-byte words, 1 and 4 banks, 1 and 2 read/write ports. Writes the grid to
``tests/fixtures/area/cacti_45nm_sram.csv`` (what the area test compares the model with) and prints
the least-squares fit of the model of :func:`accel.area.sram_area_um2`::

    area = banks * (1 + f * (ports - 1)) * (a * bits_per_bank + c * word_bits)

(``a``: um2 per bit, ``c``: um2 per bank per word bit, ``f``: the share a second port adds, the
median 2-port / 1-port ratio less one), with the model's error on every point::

    python benchmarks/area_cacti.py --cacti /path/to/cacti [--out tests/fixtures/area/cacti_45nm_sram.csv]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import re
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np

SIZES = (16384, 65536, 262144, 1048576, 4194304)
WORDS = (16, 64)
BANKS = (1, 4)
PORTS = (1, 2)
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "tests" / "fixtures" / "area" / "cacti_45nm_sram.csv"
RESULTS = ROOT / "benchmarks" / "results" / "area_cacti.json"


def _config(base: str, size: int, word: int, banks: int, ports: int) -> str:
    fields = {r"-size \(bytes\) \d+": f"-size (bytes) {size}",
              r"-block size \(bytes\) \d+": f"-block size (bytes) {word}",
              r"-associativity \d+": "-associativity 1",
              r"-read-write port \d+": f"-read-write port {ports}",
              r"-UCA bank count \d+": f"-UCA bank count {banks}",
              r"-technology \(u\) [\d.]+": "-technology (u) 0.045",
              r"-output/input bus width \d+": f"-output/input bus width {word * 8}",
              r'-cache type "cache"': '-cache type "ram"'}
    for pattern, value in fields.items():
        base, count = re.subn("^" + pattern, value, base, flags=re.MULTILINE)
        if count != 1:
            raise SystemExit(f"cache.cfg has no single line matching {pattern!r}")
    return base


def _area_mm2(cacti: Path, config: str, name: str) -> float:
    path = cacti / f"accel_{name}.cfg"
    path.write_text(config)
    out = subprocess.run(["./cacti", "-infile", path.name], cwd=cacti, capture_output=True, text=True,
                         check=False).stdout
    match = re.search(r"Cache height x width \(mm\): ([\d.]+) x ([\d.]+)", out)
    if match is None:
        raise SystemExit(f"CACTI gave no area for {name}:\n{out[-2000:]}")
    return float(match.group(1)) * float(match.group(2))


def _features(row: dict[str, float]) -> list[float]:
    return [row["banks"] * row["size_bytes"] * 8 / row["banks"], row["banks"] * row["word_bytes"] * 8]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cacti", type=Path, required=True, help="folder holding the built cacti and cache.cfg")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    base = (args.cacti / "cache.cfg").read_text()
    start = time.monotonic()
    rows = []
    for size, word, banks, ports in itertools.product(SIZES, WORDS, BANKS, PORTS):
        area = _area_mm2(args.cacti, _config(base, size, word, banks, ports), f"{size}_{word}_{banks}_{ports}")
        rows.append({"size_bytes": size, "word_bytes": word, "banks": banks, "ports": ports, "area_mm2": area})
        print(f"{size:>8} B, {word:>2} B words, {banks} bank(s), {ports} port(s): {area:.4f} mm2", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**r, "area_mm2": f"{r['area_mm2']:.6f}"} for r in rows)
    one = [r for r in rows if r["ports"] == 1]
    y = np.array([r["area_mm2"] * 1e6 for r in one])
    x = np.array([_features(r) for r in one])
    a, c = np.linalg.lstsq(x / y[:, None], np.ones_like(y), rcond=None)[0]  # least relative error
    ratios = [two["area_mm2"] / r["area_mm2"] for r in one for two in rows
              if two["ports"] == 2 and all(two[k] == r[k] for k in ("size_bytes", "word_bytes", "banks"))]
    f = statistics.median(ratios) - 1
    errors = [((1 + f * (r["ports"] - 1)) * (a * _features(r)[0] + c * _features(r)[1])) / (r["area_mm2"] * 1e6) - 1
              for r in rows]
    fit = {"sram_um2_per_bit": round(float(a), 4), "sram_um2_per_bank_word_bit": round(float(c), 2),
           "sram_extra_port_fraction": round(float(f), 3),
           "rms_error": round(float(np.sqrt(np.mean(np.square(errors)))), 3),
           "max_abs_error": round(float(max(abs(e) for e in errors)), 3)}
    print(json.dumps(fit, indent=1))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"fit": fit, "points": rows, "wall_seconds": round(time.monotonic() - start, 1)},
                                  indent=1) + "\n")
    print(f"{len(rows)} CACTI runs in {time.monotonic() - start:.0f} s -> {args.out}, {RESULTS}")


if __name__ == "__main__":
    main()
