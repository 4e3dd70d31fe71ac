"""Read and write hardware descriptions as TOML, and find the shipped presets.

``load(spec)`` takes a preset name (``tpu-v1``, ``gemmini``, ``eyeriss``, ``fpga-small``, ...) or a
path to a TOML file and returns an :class:`~accel.hardware.Accelerator`. Every problem in a file is
collected and reported in one :class:`~accel.errors.ConfigError` whose lines name the file and the
field (``presets/x.toml: array.rows must be a positive integer, not -4``). ``dumps`` writes TOML that
``loads`` reads back to an equal value.

File layout (every section but ``[array]``, ``[scratchpad]``, ``[accumulator]`` and ``[dram]`` may be
left out and takes its defaults)::

    name = "gemmini"
    clock_hz = 1.0e9
    [array]        rows, cols, dataflows = ["ws", "os"], input_format = "int8", weight_format,
                   accumulator_format (a format name, or {format = "q1.6", rounding = "half_even",
                   overflow = "saturate"}), sparsity = ["2:4"], requant = "tflite-double" (or
                   "tflite-single", "dyadic", "float32-half-even": accel.formats.Requantization)
    [vector]       lanes, latency_cycles
    [scratchpad]   size_bytes (an integer, or a string such as "256 KiB"), banks, ports, word_bytes
    [accumulator]  the same fields
    [dma]          channels, bandwidth_bytes_per_cycle, latency_cycles, burst_bytes, max_request_bytes,
                   max_in_flight
    [dram]         bandwidth_bytes_per_cycle, latency_cycles, energy_pj_per_byte
    [activation]   functions = ["relu", "sigmoid"]: fused on the accumulator-to-scratchpad path;
                   latency_cycles: its pipeline, which a Move takes on top of its beats
    [control]      issue_cycles, queue_depth: a host issuing the commands (0: none)
    [energy]       any fields of accel.energy.EnergyTable, each overriding that field of the default
                   table (accel/tech/default_45nm.toml), e.g. vector_op_pj = 0.5 or
                   multiply_pj_by_bits = { 8 = 0.25, 32 = 3.5 }
    [area]         any fields of accel.area.AreaTable, each overriding that field of the default
                   table (accel/tech/area_45nm.toml), e.g. sram_um2_per_bit = 0.3

``dumps`` writes an ``[energy]`` (``[area]``) section only when the table differs from the default,
and then only the fields that differ.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from accel.area import AreaTable, area_table, default_area_table
from accel.energy import EnergyTable, default_table, table_from_dict, table_to_dict
from accel.errors import ConfigError, unknown_field
from accel.formats import NumberFormat, Overflow, Requantization, Rounding
from accel.hardware import (
    DMA,
    DRAM,
    Accelerator,
    ActivationPath,
    Control,
    Dataflow,
    Memory,
    Sparsity,
    SystolicArray,
    VectorUnit,
)

__all__ = ["load", "loads", "dumps", "save", "preset_names", "parse_size"]

_SECTIONS: dict[str, type] = {
    "array": SystolicArray,
    "vector": VectorUnit,
    "scratchpad": Memory,
    "accumulator": Memory,
    "dma": DMA,
    "dram": DRAM,
    "activation": ActivationPath,
    "control": Control,
}
_REQUIRED_SECTIONS = ("array", "scratchpad", "accumulator", "dram")
_TOP_FIELDS = ("name", "clock_hz", "description")
_FORMAT_FIELDS = ("input_format", "weight_format", "accumulator_format")
_SIZE_UNITS = {"": 1, "b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "kb": 1000, "mb": 1000**2,
               "gb": 1000**3, "k": 1 << 10, "m": 1 << 20}


def preset_names() -> tuple[str, ...]:
    """Names of the presets shipped in ``accel/presets`` (file stem, ``_`` written as ``-``)."""
    folder = resources.files("accel") / "presets"
    return tuple(sorted(p.name[:-5].replace("_", "-") for p in folder.iterdir() if p.name.endswith(".toml")))


def load(spec: str | Path) -> Accelerator:
    """Load a preset by name, or a TOML file by path."""
    text_spec = str(spec)
    preset_file = resources.files("accel") / "presets" / (text_spec.replace("-", "_") + ".toml")
    if not text_spec.endswith(".toml") and "/" not in text_spec and preset_file.is_file():
        return loads(preset_file.read_text(), source=f"preset {text_spec}")
    path = Path(spec)
    if path.is_dir():
        raise ConfigError(f"{text_spec}: is a folder, not a TOML file (or a preset: {', '.join(preset_names())})")
    if not path.is_file():
        raise ConfigError(
            f"{text_spec}: not a preset ({', '.join(preset_names())}) and no such TOML file"
        )
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (Windows editors) is not TOML
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read as text ({exc})") from None
    return loads(text, source=str(path))


def loads(text: str, *, source: str = "<string>") -> Accelerator:
    """Parse TOML text; ``source`` names the file in error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML ({exc})") from None
    return from_dict(data, source=source)


def from_dict(data: dict[str, Any], *, source: str = "<dict>") -> Accelerator:
    """Build an accelerator from the dictionary form of the TOML file, collecting every problem."""
    problems: list[str] = []
    known = set(_TOP_FIELDS) | set(_SECTIONS) | {"energy", "area"}
    for key in data:
        if key not in known:
            problems.append(unknown_field(key, sorted(known)))
    for key in ("name", "clock_hz"):
        if key not in data:
            problems.append(f"{key} is missing")
    sections: dict[str, Any] = {}
    for section, cls in _SECTIONS.items():
        if section not in data:
            if section in _REQUIRED_SECTIONS:
                problems.append(f"section [{section}] is missing")
            continue
        if not isinstance(data[section], dict):
            problems.append(f"{section} must be a table [{section}], not {data[section]!r}")
            continue
        built = _build_section(section, cls, data[section], problems)
        if built is not None:
            sections[section] = built
    if "energy" in data:
        energy = _build_energy(data["energy"], problems)
        if energy is not None:
            sections["energy"] = energy
    if "area" in data:
        area = _build_area(data["area"], problems)
        if area is not None:
            sections["area"] = area
    if not problems:
        try:
            return Accelerator(
                name=data["name"], clock_hz=data["clock_hz"], description=data.get("description", ""), **sections
            )
        except ConfigError as exc:
            problems.extend(str(exc).split("; "))
    raise ConfigError("\n".join(f"{source}: {p}" for p in problems))


def _build_section(section: str, cls: type, table: dict[str, Any], problems: list[str]) -> Any:
    names = [f.name for f in dataclasses.fields(cls)]
    required = [f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    values: dict[str, Any] = {}
    before = len(problems)
    for key, value in table.items():
        if key not in names:
            problems.append(unknown_field(key, names, prefix=f"{section}."))
            continue
        try:
            values[key] = _convert(key, value)
        except ConfigError as exc:
            problems.append(f"{section}.{key}: {exc}")
    for key in required:
        if key not in table:
            problems.append(f"{section}.{key} is missing")
    if len(problems) > before:
        return None
    try:
        return cls(**values)
    except ConfigError as exc:
        problems.extend(f"{section}.{p}" for p in str(exc).split("; "))
        return None
    except TypeError as exc:  # a value of a type the dataclass cannot even compare
        problems.append(f"{section}: {exc}")
        return None


def _build_energy(table: Any, problems: list[str]) -> EnergyTable | None:
    """The default energy table with the fields of the ``[energy]`` section replaced."""
    if not isinstance(table, dict):
        problems.append(f"energy must be a table [energy], not {table!r}")
        return None
    try:
        return table_from_dict(table)
    except ConfigError as exc:
        for problem in str(exc).split("; "):
            if problem.startswith("unknown field "):
                problems.append("unknown field energy." + problem.removeprefix("unknown field "))
            else:
                problems.append(f"energy.{problem}")
        return None


def _build_area(table: Any, problems: list[str]) -> AreaTable | None:
    """The default area table with the fields of the ``[area]`` section replaced."""
    if not isinstance(table, dict):
        problems.append(f"area must be a table [area], not {table!r}")
        return None
    try:
        return area_table(table, base=default_area_table())
    except ConfigError as exc:
        problems.extend(str(exc).split("; "))
        return None


def _convert(key: str, value: Any) -> Any:
    """Turn the TOML form of one field into the dataclass form."""
    if key == "dataflows":
        if not isinstance(value, list):
            raise ConfigError(f"must be a list such as ['ws', 'os'], not {value!r}")
        return tuple(Dataflow.parse(v) for v in value)
    if key == "functions":
        if not isinstance(value, list):
            raise ConfigError(f"must be a list such as ['relu', 'sigmoid'], not {value!r}")
        return tuple(value)
    if key == "sparsity":
        if not isinstance(value, list):
            raise ConfigError(f"must be a list such as ['2:4', '1:4'], not {value!r}")
        return tuple(Sparsity.parse(v) for v in value)
    if key in _FORMAT_FIELDS:
        return _parse_format(value)
    if key == "requant":
        if not isinstance(value, str):
            raise ConfigError(f"must be one of {', '.join(repr(r.value) for r in Requantization)}, not {value!r}")
        return Requantization.parse(value)
    if key == "size_bytes" and isinstance(value, str):
        return parse_size(value)
    return value


def _parse_format(value: Any) -> NumberFormat:
    if isinstance(value, str):
        return NumberFormat.parse(value)
    if isinstance(value, dict):
        extra = set(value) - {"format", "rounding", "overflow"}
        if extra or "format" not in value:
            raise ConfigError(f"must be a table with 'format' and optional 'rounding', 'overflow', not {value!r}")
        try:
            rounding = Rounding(value.get("rounding", Rounding.HALF_EVEN.value))
        except ValueError:
            raise ConfigError(
                f"rounding must be one of {', '.join(r.value for r in Rounding)}, not {value['rounding']!r}"
            ) from None
        try:
            overflow = Overflow(value.get("overflow", Overflow.SATURATE.value))
        except ValueError:
            raise ConfigError(
                f"overflow must be one of {', '.join(o.value for o in Overflow)}, not {value['overflow']!r}"
            ) from None
        return NumberFormat.parse(value["format"], rounding=rounding, overflow=overflow)
    raise ConfigError(f"must be a number format such as 'int8', not {value!r}")


def parse_size(text: str | int) -> int:
    """Read a byte count: ``65536``, ``"64KiB"``, ``"256 KiB"``, ``"24MiB"``, ``"1.5 MiB"``."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
    unit = match[2].lower() if match else None
    if match is None or unit not in _SIZE_UNITS:
        raise ConfigError(f"size must be a byte count such as 262144 or '256 KiB', not {text!r}")
    value = float(match[1]) * _SIZE_UNITS[unit]
    if value != int(value):
        raise ConfigError(f"size must be a whole number of bytes, not {text!r}")
    return int(value)


def to_dict(acc: Accelerator) -> dict[str, Any]:
    """The dictionary (TOML) form of an accelerator; :func:`from_dict` reads it back."""
    out: dict[str, Any] = {"name": acc.name, "clock_hz": acc.clock_hz}
    if acc.description:
        out["description"] = acc.description
    for section in _SECTIONS:
        obj = getattr(acc, section)
        table: dict[str, Any] = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if isinstance(value, NumberFormat):
                default = NumberFormat(value.bits, value.signed, value.frac_bits)
                value = value.name if value == default else {
                    "format": value.name, "rounding": value.rounding.value, "overflow": value.overflow.value}
            elif isinstance(value, Requantization):
                value = value.value
            elif isinstance(value, tuple):
                value = [v.value if isinstance(v, Dataflow) else str(v) for v in value]
            table[f.name] = value
        out[section] = table
    energy = table_to_dict(acc.energy, only_diff_from=default_table())
    if energy:
        out["energy"] = energy
    base_area = default_area_table()
    area = {f.name: getattr(acc.area, f.name) for f in dataclasses.fields(acc.area)
            if getattr(acc.area, f.name) != getattr(base_area, f.name)}
    if area:
        out["area"] = area
    return out


def dumps(acc: Accelerator) -> str:
    """TOML text for ``acc``."""
    lines = []
    sections = []
    for key, value in to_dict(acc).items():
        if isinstance(value, dict):
            sections.append((key, value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    for name, table in sections:
        lines.append(f"\n[{name}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in table.items())
    return "\n".join(lines) + "\n"


def save(acc: Accelerator, path: str | Path) -> None:
    Path(path).write_text(dumps(acc))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")
