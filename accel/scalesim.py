"""Read SCALE-Sim v3 architecture configs (``.cfg``, INI) as an :class:`~accel.hardware.Accelerator`.

SCALE-Sim describes an array and three double-buffered SRAMs; this maps them onto our description:

=============================  =================================================================
SCALE-Sim                      accel
=============================  =================================================================
``ArrayHeight`` x ``ArrayWidth``  ``array.rows`` x ``array.cols``
``Dataflow`` (ws / os / is)    ``array.dataflows`` (that one only)
``IfmapSramSzkB`` + ``FilterSramSzkB``  ``scratchpad.size_bytes`` (KiB; one word = one byte)
``OfmapSramSzkB``              ``accumulator.size_bytes``
``Bandwidth`` (words/cycle)    ``dram.bandwidth_bytes_per_cycle`` and the DMA's (one word = one byte;
                               of a list ``10, 20`` the first, as SCALE-Sim v3 uses)
``MemoryBanks``                ``scratchpad.banks``
=============================  =================================================================

SCALE-Sim's SRAMs feed the array whatever it asks for, so the scratchpad's word is as wide as the
array's edge (no bank conflicts). SCALE-Sim has no clock, no DRAM latency and no vector unit: the
clock is 1 GHz (so latencies in seconds equal cycles in ns), DRAM and DMA latencies are 0, and the
vector unit has one lane per array column. Number formats are int8 with int32 accumulators
(SCALE-Sim counts words, not bits).
Keys are read case-insensitively; ``key : value`` and ``key = value`` both work.
"""

from __future__ import annotations

import configparser
from pathlib import Path

from accel.errors import ConfigError
from accel.hardware import DMA, DRAM, Accelerator, Dataflow, Memory, SystolicArray, VectorUnit

__all__ = ["load_scalesim_config"]

_REQUIRED = ("arrayheight", "arraywidth", "ifmapsramszkb", "filtersramszkb", "ofmapsramszkb", "dataflow")


def load_scalesim_config(path: str | Path) -> Accelerator:
    """Read a SCALE-Sim ``.cfg``; every problem is reported at once, naming the file and the key."""
    path = Path(path)
    parser = configparser.ConfigParser(delimiters=(":", "="), inline_comment_prefixes=("#", ";"))
    try:
        with path.open(encoding="utf-8-sig") as handle:  # a byte-order mark is not part of the INI text
            parser.read_file(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such SCALE-Sim config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a SCALE-Sim config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a SCALE-Sim config (INI) file: {str(exc).splitlines()[0]}") from None
    section = "architecture_presets"
    if not parser.has_section(section):
        raise ConfigError(f"{path}: section [{section}] is missing")
    values = dict(parser.items(section))
    if "," in values.get("bandwidth", ""):  # SCALE-Sim v3 reads a list and uses its first entry
        values["bandwidth"] = values["bandwidth"].split(",")[0]
    problems = [f"[{section}] {key} is missing" for key in _REQUIRED if key not in values]

    def number(key: str, *, default: int | None = None, positive: bool = True) -> int:
        text = values.get(key)
        if text is None:
            return default if default is not None else 0
        try:
            value = int(float(text))
            if value != float(text):
                raise ValueError
        except (ValueError, OverflowError):  # OverflowError: 'inf', '1e400'
            problems.append(f"[{section}] {key} must be an integer, not {text!r}")
            return 1
        if positive and value < 1:
            problems.append(f"[{section}] {key} must be a positive integer, not {text!r}")
            return 1
        return value

    rows, cols = number("arrayheight"), number("arraywidth")
    ifmap_kib, filter_kib, ofmap_kib = number("ifmapsramszkb"), number("filtersramszkb"), number("ofmapsramszkb")
    bandwidth = number("bandwidth", default=10)
    banks = number("memorybanks", default=1)
    dataflow_text = values.get("dataflow", "ws").strip().lower()
    if dataflow_text not in {d.value for d in Dataflow}:
        problems.append(f"[{section}] dataflow must be one of ws, os, is, not {dataflow_text!r}")
    if problems:
        raise ConfigError("\n".join(f"{path}: {p}" for p in problems))
    spad_bytes = (ifmap_kib + filter_kib) * 1024
    run_name = parser.get("general", "run_name", fallback=path.stem).strip() or path.stem
    try:
        return Accelerator(
            name=run_name,
            description=f"from SCALE-Sim config {path.name}",
            clock_hz=1e9,
            array=SystolicArray(rows=rows, cols=cols, dataflows=(Dataflow(dataflow_text),)),
            scratchpad=_sram(spad_bytes, banks, word_bytes=rows + cols),
            accumulator=_sram(ofmap_kib * 1024, 1, word_bytes=4 * cols),
            dma=DMA(channels=1, bandwidth_bytes_per_cycle=float(bandwidth), latency_cycles=0, burst_bytes=1),
            dram=DRAM(bandwidth_bytes_per_cycle=float(bandwidth), latency_cycles=0),
            vector=VectorUnit(lanes=cols, latency_cycles=1),
        )
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _sram(size_bytes: int, banks: int, *, word_bytes: int) -> Memory:
    """A memory of ``size_bytes`` whose words are at least ``word_bytes`` wide (rounded so they tile it)."""
    banks = banks if size_bytes % banks == 0 else 1
    word = next(w for w in range(word_bytes, size_bytes + 1) if (size_bytes // banks) % w == 0)
    return Memory(size_bytes=size_bytes, banks=banks, ports=2, word_bytes=word)
