"""The memory map of an allocation: scratchpad address against schedule step, one box per tensor.

Each on-chip interval of a tensor is a rectangle from its first to its last step (x) and from its
offset to offset + size (y). The hatched grey band at the top of each step is that layer's working
space, where its tiles are double-buffered (the allocation keeps residents below it). A tensor kept
on chip that is written to DRAM (evicted) is marked with a red downward triangle at its place, one
read back from DRAM (reloaded) with a blue upward one. Tensors with no on-chip interval are streamed
through the working space and not drawn. The largest boxes carry their tensor's name.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from reports.units import bytes_formatter, bytes_locator, new_figure

__all__ = ["plot_memory_map"]

#: How many of the largest resident boxes are labelled with their tensor's name.
LABELLED = 12


class _Problem(Protocol):
    name: str
    capacity_bytes: int
    steps: tuple[str, ...]
    reserved_bytes: tuple[int, ...]


def plot_memory_map(problem: _Problem, allocation: object, *, title: str = "") -> Figure:
    """Rectangles for ``allocation.tensors[*].intervals``; evictions, reloads and working space marked."""
    steps = len(problem.steps)
    fig = new_figure(max(6.0, min(0.1 * steps + 3, 16.0)), 5.0)
    ax = fig.add_subplot()
    capacity = problem.capacity_bytes
    for i, reserved in enumerate(problem.reserved_bytes):
        if reserved:
            ax.add_patch(Rectangle((i - 0.5, capacity - reserved), 1, reserved, facecolor="0.88",
                                   edgecolor="0.75", hatch="///", linewidth=0))
    colours = [f"C{i}" for i in range(10)]
    spills, reloads, boxes = [], [], []
    for index, (name, tensor) in enumerate(allocation.tensors.items()):  # type: ignore[attr-defined]
        if not tensor.intervals:
            continue
        size = tensor.size_bytes
        for first, last, offset in tensor.intervals:
            ax.add_patch(Rectangle((first - 0.5, offset), last - first + 1, size, facecolor=colours[index % 10],
                                   edgecolor="black", linewidth=0.3, alpha=0.75))
            boxes.append(((last - first + 1) * size, name, first, last, offset, size))
        spills += [(step, _place(tensor.intervals, step) + size / 2) for step in tensor.write_steps]
        reloads += [(step, _place(tensor.intervals, step) + size / 2) for step in tensor.read_steps]
    for _, name, first, last, offset, size in sorted(boxes, reverse=True)[:LABELLED]:
        ax.text((first + last) / 2, offset + size / 2, str(name), ha="center", va="center", fontsize=6,
                clip_on=True, rotation=90 if last - first < 3 else 0)
    for points, marker, colour in ((spills, "v", "tab:red"), (reloads, "^", "tab:blue")):
        if points:
            xy = np.array(points, dtype=float)
            ax.scatter(xy[:, 0], xy[:, 1], marker=marker, color=colour, s=18, zorder=3, edgecolor="white",
                       linewidth=0.4)
    ax.set_xlim(-0.5, steps - 0.5)
    ax.set_ylim(0, capacity * 1.02)
    ax.yaxis.set_major_locator(bytes_locator(capacity))
    ax.yaxis.set_major_formatter(bytes_formatter())
    ax.set_xlabel("schedule step (layer)")
    ax.set_ylabel("scratchpad address")
    ax.set_title(title or f"memory map: {problem.name}", fontsize=10)
    handles = [Patch(facecolor="0.88", edgecolor="0.75", hatch="///", label="layer's working space (its tiles)"),
               Patch(facecolor="C0", alpha=0.75, edgecolor="black", label="resident tensor"),
               Line2D([], [], marker="v", color="tab:red", linestyle="", label="evicted (written to DRAM)"),
               Line2D([], [], marker="^", color="tab:blue", linestyle="", label="reloaded (read from DRAM)")]
    ax.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=4)
    return fig


def _place(intervals: tuple[tuple[int, int, int], ...], step: int) -> int:
    """The offset of the on-chip interval nearest to ``step`` (where an eviction or reload happens)."""
    return min(intervals, key=lambda iv: 0 if iv[0] <= step <= iv[1] else min(abs(step - iv[0]), abs(step - iv[1])))[2]
