"""Engineering units for plots and tables: bytes in KiB/MiB, time, energy, power and frequency with SI
prefixes, and the shared helpers that keep per-layer plots readable at any model size.

* :func:`bytes_text` (``131072`` -> ``"128 KiB"``), :func:`si_text` (``0.0042, "s"`` -> ``"4.2 ms"``);
* :func:`bytes_formatter`, :func:`si_formatter`: the same as matplotlib tick formatters;
* :func:`value_text`: a swept parameter's value as a person reads it (sizes in KiB, clocks in MHz);
* :func:`top_rows`: the ``n`` largest rows of a per-layer table, the rest summed into one row, so a
  150-layer model gives a plot of ``n + 1`` readable bars;
* :func:`new_figure`: a :class:`matplotlib.figure.Figure` that is not registered with pyplot (so
  the library never switches the caller's backend or leaks figures); ``fig.savefig`` works as usual.
"""

from __future__ import annotations

import math

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter, FuncFormatter, MultipleLocator

__all__ = ["bytes_text", "bytes_formatter", "bytes_locator", "new_figure", "si_formatter", "si_text", "top_rows",
           "value_text"]

_BINARY = ("B", "KiB", "MiB", "GiB", "TiB")


def bytes_text(n: float) -> str:
    """``n`` bytes with a binary prefix and at most three significant digits: ``"1.5 KiB"``."""
    if not math.isfinite(n):
        return str(n)
    value, unit = float(n), 0
    while abs(value) >= 1024 and unit < len(_BINARY) - 1:
        value /= 1024
        unit += 1
    text = f"{value:.0f}" if unit == 0 or value == int(value) else f"{value:.3g}"
    return f"{text} {_BINARY[unit]}"


def si_text(value: float, unit: str, *, places: int | None = None) -> str:
    """``value`` in ``unit`` with an SI prefix (``si_text(4.2e-3, "s") == "4.2 ms"``)."""
    return EngFormatter(unit=unit, places=places, sep=" ").format_data(value) if math.isfinite(value) else str(value)


def bytes_formatter() -> FuncFormatter:
    """Tick labels in B / KiB / MiB."""
    return FuncFormatter(lambda value, _: bytes_text(value))


def bytes_locator(span_bytes: float, *, ticks: int = 5) -> MultipleLocator:
    """Ticks at a power-of-two step (so labels read 64 KiB, 128 KiB, ...) giving about ``ticks`` ticks."""
    step = 2 ** max(0, math.floor(math.log2(max(span_bytes, 1) / ticks)))
    return MultipleLocator(step)


def si_formatter(unit: str) -> EngFormatter:
    """Tick labels with SI prefixes (``ms``, ``mJ``, ``MHz``)."""
    return EngFormatter(unit=unit, sep=" ")


def value_text(param: str, value: object) -> str:
    """A parameter value as a person reads it: byte sizes in KiB/MiB, clocks in MHz, lists joined."""
    if isinstance(value, list | tuple):
        return "+".join(str(v) for v in value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if param.endswith("bytes") or param.endswith("size_bytes"):
        return bytes_text(value)
    if param.endswith("_hz"):
        return si_text(value, "Hz")
    return f"{value:g}"


def top_rows(frame: pd.DataFrame, by: str, n: int, *, label: str = "layer") -> pd.DataFrame:
    """The ``n`` rows of ``frame`` with the largest ``by``, largest first, and (when rows were left
    out) one more row ``"other K layers"`` holding the sum of every numeric column of the rest."""
    ranked = frame.sort_values(by, ascending=False, kind="stable")
    if len(ranked) <= n + 1:
        return ranked.reset_index(drop=True)
    shown, rest = ranked.iloc[:n], ranked.iloc[n:]
    other = {c: rest[c].sum() if pd.api.types.is_numeric_dtype(rest[c]) else "" for c in frame.columns}
    other[label] = f"other {len(rest)} {label}s"
    return pd.concat([shown, pd.DataFrame([other])], ignore_index=True)


def new_figure(width_in: float, height_in: float) -> Figure:
    """A figure with constrained layout, independent of pyplot's figure manager."""
    return Figure(figsize=(width_in, height_in), layout="constrained")
