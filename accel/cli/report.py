"""The ``accel report`` command: the HTML report of a sweep's results file (Parquet or CSV).

Registered by :mod:`accel.cli` through :func:`register`. A missing or unreadable file raises
:class:`sim.sweep.SweepError` (from :func:`sim.sweep.read_results`), an unusable one (no rows, no
``ok`` row, an objective that is not a column) :class:`reports.pareto.ReportError`, each naming the
file, which the CLI prints as one line ``accel: error: ...`` with exit status 2. A drill-down row whose
``key`` says it ran on another design than ``--base`` (or the preset its ``arch`` names) is not
re-run: the page notes it and a warning says to give the sweep's base design.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from accel.cli._types import non_negative_int

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``report`` command to ``subparsers``."""
    report = subparsers.add_parser(
        "report", help="write the HTML report of a sweep's results",
        description="Write one self-contained OUT/index.html for a sweep's results (Parquet or CSV): the "
                    "setup, the Pareto front of the objectives, the sensitivity to each swept parameter, the "
                    "best points, and a drill-down into the best and knee points (mapped and simulated again: "
                    "roofline, per-layer cycles and energy, unit utilisation, memory map, power).",
        epilog="e.g. accel report sweep.parquet --out reports/sweep --objectives latency_s,energy_j")
    report.add_argument("results", type=Path, metavar="RESULTS", help="the sweep's results, .parquet or .csv")
    report.add_argument("--out", type=Path, required=True, help="folder to write index.html into")
    report.add_argument("--objectives", default=None, metavar="A,B[,C]",
                        help="two or three metric columns, comma-separated (default: the sweep's own objectives, "
                             "which a Parquet file records, else latency_s,energy_j)")
    report.add_argument("--drill-down", type=non_negative_int, default=3, metavar="N",
                        help="how many points to map and simulate again in detail (default 3; 0: none)")
    report.add_argument("--title", default=None, help="the page title (default: from the designs and workloads)")
    report.add_argument("--base", default=None, metavar="DESIGN",
                        help="the sweep's base design (preset or TOML file) for the drill-down; needed when it "
                             "was a TOML file (default: the preset named in the results' arch column)")
    report.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> int:
    from accel.cli._output import folder_for_output
    from reports.html import check_results, write_html_report
    from reports.pareto import ReportError
    from sim.sweep import read_results

    folder_for_output(args.out)
    path: Path = args.results
    frame = read_results(path)  # a bad file fails here, naming it
    if args.objectives is not None:
        objectives = [o.strip() for o in args.objectives.split(",") if o.strip()]
    else:
        objectives = list(frame.attrs.get("objectives") or ("latency_s", "energy_j"))
    try:
        check_results(frame, objectives)
    except ReportError as exc:
        raise ReportError(f"{path}: {exc}") from None
    from accel import config
    from accel.errors import ConfigError
    from sim.sweep import materialize
    from sim.sweep.point import computed_on

    base = None if args.base is None else config.load(args.base)  # a bad design fails here, before any write

    def rebuild(row: Any) -> Any:
        # A row's key says which design it ran on: a TOML base that kept its preset's name must not be
        # re-run as that preset, nor a point on any other design than the sweep's.
        design = row["arch"] if base is None else base
        if not computed_on(row, design):
            which = f"the preset {design!r}" if base is None else str(args.base)
            raise ConfigError(f"the sweep did not run on {which} (the row's key is another design's); give the "
                              f"sweep's base design with --base PRESET or FILE.toml")
        return materialize(row, design)

    index = write_html_report(frame, args.out, objectives=objectives, title=args.title, drill_down=args.drill_down,
                              rebuild=rebuild)
    print(index)
    return 0
