"""Sweep spec files: the TOML that names a base design, the workloads, the objectives and the space.

:func:`load_spec` reads one into a :class:`SweepSpec`; :func:`default_spec_path` is the built-in spec
``accel sweep`` runs without a file (``sim/sweeps/default.toml``, package data). Every problem (a
file that cannot be read or is not TOML, an unknown table or key, a value of the wrong type, a
workload file that cannot be imported) raises one :class:`~accel.errors.ConfigError` naming the
file and the key.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accel import config
from accel.errors import AccelError, ConfigError
from sim.metrics import METRICS
from sim.sweep.point import check_workload
from sim.sweep.space import Space
from workloads import zoo

__all__ = ["SweepSpec", "default_spec_path", "load_spec"]


@dataclass(frozen=True)
class SweepSpec:
    """What a spec file asks for: a space, the workloads and the objectives a report trades off."""

    space: Space
    workloads: tuple[str, ...]
    objectives: tuple[str, ...] = ("latency_s", "energy_j")
    source: str = "<spec>"


_SWEEP_KEYS = ("base", "workloads", "objectives", "sample", "samples", "seed", "fpga_family", "fpga_device")


def default_spec_path() -> Path:
    """The built-in spec ``accel sweep`` runs without a file (``sim/sweeps/default.toml``)."""
    return Path(__file__).resolve().parents[1] / "sweeps" / "default.toml"


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"array": {"rows": [..]}}`` and ``{"array.rows": [..]}`` both as ``{"array.rows": [..]}``."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def _read_toml(path: Path) -> dict[str, Any]:
    source = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{source}: cannot be read ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark, as some editors write, is not part of the TOML
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not a text file (not UTF-8 at byte {exc.start})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML ({exc})") from None


def load_spec(path: str | Path, **overrides: Any) -> SweepSpec:
    """Read a sweep spec (TOML); ``overrides`` replace keys of its ``[sweep]`` table (e.g. ``samples=``).

    Layout::

        [sweep]
        base = "sparse-nm"                      # preset name or TOML path (relative to this file)
        workloads = ["resnet18", "bert_base_layer"]   # zoo names or .onnx/.csv paths
        objectives = ["latency_s", "energy_j"]  # optional; metric columns to trade off
        sample = "product"                      # or "random" / "lhs" with samples = N, seed = S
        fpga_family = "ecp5"                    # family of the LUT/DSP/Fmax estimate
        fpga_device = "45k"                     # optional: points whose tile does not fit it are invalid

        [params]                                # one axis per key: the product of all axes
        "array.size" = [8, 16, 32]              # tied: rows = cols
        "array.dataflows" = [["ws"], ["os"]]
        "scratchpad.size_bytes" = ["128 KiB", "512 KiB"]
        "workload.nm" = ["dense", "2:4"]

        [[zip]]                                 # optional: paths that move together, one axis
        "dram.bandwidth_bytes_per_cycle" = [8.0, 16.0]
        "dma.bandwidth_bytes_per_cycle" = [8.0, 16.0]

    Every problem raises :class:`ConfigError` naming the file and the key.
    """
    path = Path(path)
    source = str(path)
    data = _read_toml(path)
    for key in data:
        if key not in ("sweep", "params", "zip"):
            raise ConfigError(f"{source}: unknown table {key} (expected [sweep], [params], [[zip]])")
    for key, kind in (("sweep", "[sweep]"), ("params", "[params]")):
        if not isinstance(data.get(key, {}), dict):
            raise ConfigError(f"{source}: {key} must be a table {kind}, not {data[key]!r}")
    settings = dict(data.get("sweep", {}))
    settings.update({k: v for k, v in overrides.items() if v is not None})
    for key in settings:
        if key not in _SWEEP_KEYS:
            raise ConfigError(f"{source}: unknown key sweep.{key} (expected one of {', '.join(_SWEEP_KEYS)})")
    if "samples" in data.get("sweep", {}) and settings.get("sample", "product") == "product" \
            and overrides.get("sample") is None:  # an explicit sample="product" override runs every point
        raise ConfigError(f"{source}: sweep.samples = {settings['samples']!r} needs sample = 'random' or 'lhs' "
                          "(a product enumerates every point)")
    if "workloads" not in settings:
        raise ConfigError(f"{source}: sweep.workloads is missing (a list of zoo names or .onnx/.csv files)")
    base = settings.get("base", "gemmini")
    if isinstance(base, str) and base.endswith(".toml"):
        base = str(path.parent / base)
    try:
        base_arch = config.load(base) if isinstance(base, str) else None
    except ConfigError as exc:
        raise ConfigError(f"{source}: sweep.base: {exc}") from None
    if base_arch is None:
        raise ConfigError(f"{source}: sweep.base must be a preset name or a TOML path, not {base!r}")
    names = settings["workloads"]
    if not isinstance(names, list) or not names:
        raise ConfigError(f"{source}: sweep.workloads must be a non-empty list, not {names!r}")
    zoo_names = set(zoo.names())
    resolved = []
    for name in names:
        if isinstance(name, str) and name in zoo_names:
            resolved.append(name)
        elif isinstance(name, str) and (path.parent / name).is_file():
            try:
                check_workload(str(path.parent / name))
            except AccelError as exc:
                raise ConfigError(f"{source}: sweep.workloads: {exc}") from None
            resolved.append(str(path.parent / name))
        elif isinstance(name, str) and name.lower().endswith((".onnx", ".csv")):
            raise ConfigError(f"{source}: sweep.workloads: no file {path.parent / name} (a workload file is found "
                              f"relative to the spec's folder)")
        else:
            raise ConfigError(f"{source}: sweep.workloads: unknown workload {name!r} (a zoo model such as "
                              f"resnet18, or an existing .onnx/.csv file)")
    objectives = settings.get("objectives", ["latency_s", "energy_j"])
    if not isinstance(objectives, list) or not objectives or not all(o in METRICS for o in objectives):
        raise ConfigError(f"{source}: sweep.objectives must list metric columns ({', '.join(METRICS)}), "
                          f"not {objectives!r}")
    zips = data.get("zip", [])
    if not isinstance(zips, list):
        raise ConfigError(f"{source}: zip must be an array of tables [[zip]], not {zips!r}")
    try:
        space = Space(base=base_arch, params=_flatten(data.get("params", {})),
                      zip=[_flatten(z) if isinstance(z, dict) else z for z in zips],
                      sample=settings.get("sample", "product"), samples=settings.get("samples"),
                      seed=settings.get("seed", 0), fpga_family=settings.get("fpga_family", "ecp5"),
                      fpga_device=settings.get("fpga_device"))
    except ConfigError as exc:
        section = "sweep." if str(exc).split()[0] in _SWEEP_KEYS else ""
        raise ConfigError(f"{source}: {section}{exc}") from None
    return SweepSpec(space, tuple(resolved), tuple(objectives), source)
