"""The memory map of an allocation: scratchpad address against schedule step, one box per tensor.

Each on-chip interval of a tensor is a rectangle from its first to its last step (x) and from its
offset to offset + size (y); the shaded band at the top of each step is the layer's reserved working
space; DRAM writes (spills) are marked with a downward triangle at the tensor's address, reloads with
an upward one.
"""

from __future__ import annotations

from typing import Protocol

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

__all__ = ["plot_memory_map"]


class _Problem(Protocol):
    name: str
    capacity_bytes: int
    steps: tuple[str, ...]
    reserved_bytes: tuple[int, ...]


def plot_memory_map(problem: _Problem, allocation: object, *, title: str = "") -> plt.Figure:
    """Rectangles for ``allocation.tensors[*].intervals``; spills and reloads marked."""
    steps = len(problem.steps)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.12 * steps + 2), 4.5), layout="constrained")
    colours = plt.get_cmap("tab20")
    capacity_kib = problem.capacity_bytes / 1024
    for i, reserved in enumerate(problem.reserved_bytes):
        ax.add_patch(Rectangle((i - 0.5, capacity_kib - reserved / 1024), 1, reserved / 1024,
                               color="0.85", linewidth=0))
    spills_x, spills_y, reloads_x, reloads_y = [], [], [], []
    for index, tensor in enumerate(allocation.tensors.values()):  # type: ignore[attr-defined]
        size_kib = tensor.size_bytes / 1024
        for first, last, offset in tensor.intervals:
            ax.add_patch(Rectangle((first - 0.5, offset / 1024), last - first + 1, size_kib,
                                   facecolor=colours(index % 20), edgecolor="black", linewidth=0.3, alpha=0.8))
        place = (tensor.intervals[0][2] / 1024 + size_kib / 2) if tensor.intervals else capacity_kib
        for step in tensor.write_steps:
            spills_x.append(step)
            spills_y.append(min(place, capacity_kib))
        for step in tensor.read_steps:
            reloads_x.append(step)
            reloads_y.append(min(place, capacity_kib))
    ax.scatter(spills_x, spills_y, marker="v", color="tab:red", s=14, label="written to DRAM", zorder=3)
    ax.scatter(reloads_x, reloads_y, marker="^", color="tab:blue", s=14, label="read from DRAM", zorder=3)
    ax.set_xlim(-0.5, steps - 0.5)
    ax.set_ylim(0, capacity_kib * 1.02)
    ax.set_xlabel("schedule step (layer)")
    ax.set_ylabel("scratchpad address (KiB)")
    ax.set_title(title or f"memory map: {problem.name}")
    ax.legend(fontsize=8, loc="upper right")
    return fig
