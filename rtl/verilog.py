"""Verilog for any Amaranth component, with a JSON manifest describing its ports.

:func:`write` produces two files in ``out_dir``: ``<name>.v`` (one self-contained Verilog file, no
source-location attributes, so it is byte-identical across checkouts) and ``<name>.json``, the
manifest that testbenches and FPGA flows read instead of parsing Verilog::

    {"name": "mac_pe", "verilog": "mac_pe.v", "component": "rtl.pe.MacPE",
     "generator": "amaranth 0.5.10",
     "ports": [{"name": "clk", "direction": "input", "width": 1, "signed": false}, ...],
     "parameters": {"a_format": "int8", ...}, "latency": 2}

Ports are those of the Verilog module: the clock and reset of each clock domain the design uses
(``clk``/``rst`` for ``sync``) first, then the signature's members in declaration order. A
member's ``signed`` comes from its Amaranth shape (Amaranth's Verilog declares every port
unsigned); nested members are named as Amaranth names them (``path__to__member``).

A component advertises ``parameters`` (a JSON-able mapping) and ``latency`` (cycles, an int) by
defining attributes of those names; both are optional and may be overridden by :func:`write`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import amaranth
from amaranth.back import verilog as amaranth_verilog
from amaranth.hdl import Shape
from amaranth.lib import wiring

from accel.errors import ConfigError, ToolError

__all__ = ["Port", "Manifest", "generate", "ports_of", "write", "read_manifest"]

_log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TRIGGER_DECL = re.compile(r"^([ \t]*)reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+ )\s*= 0;$",
                           re.MULTILINE)
_TRIGGER_USE = re.compile(r"\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+")
_PORT_DECL = re.compile(r"^\s*(input|output|inout)\s+(?:\[(\d+):(\d+)\]\s+)?(\S+)\s*;", re.MULTILINE)


@dataclass(frozen=True)
class Port:
    """One port of a generated Verilog module."""

    name: str
    direction: str  # "input", "output" or "inout"
    width: int
    signed: bool = False


@dataclass(frozen=True)
class Manifest:
    """What :func:`write` records next to the Verilog file."""

    name: str
    verilog: str  # file name, relative to the manifest
    component: str  # qualified class name of the Amaranth component
    generator: str
    ports: tuple[Port, ...]
    parameters: Mapping[str, Any] = field(default_factory=dict, hash=False)
    latency: int | None = None

    def port(self, name: str) -> Port:
        """The port called ``name``; ``KeyError`` if there is none."""
        for port in self.ports:
            if port.name == name:
                return port
        raise KeyError(name)

    def to_json(self) -> str:
        data = asdict(self)
        data["ports"] = [asdict(port) for port in self.ports]
        data["parameters"] = dict(self.parameters)
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        data["ports"] = tuple(Port(**port) for port in data["ports"])
        return cls(**data)


def generate(component: wiring.Component, name: str) -> str:
    """Return the Verilog text of ``component`` as a module called ``name``.

    Every combinational process of every module evaluates once at time 0 in simulation
    (:func:`_kick_combinational`), so no signal starts undefined.
    """
    _check(component, name)
    return _kick_combinational(amaranth_verilog.convert(component, name=name, emit_src=False))


def _kick_combinational(text: str) -> str:
    """Add a time-0 event on each module's ``always @*`` trigger, outside synthesis.

    Amaranth's Verilog (yosys ``write_verilog``) declares in each module a trigger
    ``reg \\$auto$verilog_backend.cc:...:dump_module$N = 0;`` and reads it in every ``always @*``
    process so that the declaration's assignment is an event that evaluates each process once. Under
    ``iverilog -g2012`` a variable's declaration assignment happens before time 0 (SystemVerilog
    semantics) and is no event: a process whose inputs never change (a constant, a memory read port
    whose address and data settle at time 0) never runs, and its outputs stay X (an 8x8 NPU's
    accumulator read-back did). The ``initial #0`` assignment below changes the trigger after every
    process has reached its ``@*`` wait, so each one evaluates at time 0 in every simulator and
    standard mode; it is inside an ``ifndef SYNTHESIS`` block (yosys and vendor tools define
    ``SYNTHESIS``), so synthesis never sees it.
    """
    def kick(match: re.Match[str]) -> str:
        kicked.add(match[2].strip())
        return (f"{match[0]}\n`ifndef SYNTHESIS\n{match[1]}initial #0 {match[2]}= 1'h1;"
                "  // evaluate every always @* once at time 0 (rtl.verilog)\n`endif")

    kicked: set[str] = set()
    text = _TRIGGER_DECL.sub(kick, text)
    missed = sorted(set(_TRIGGER_USE.findall(text)) - kicked)
    if missed:
        raise ToolError(f"Verilog reads always @* triggers {missed} whose declaration 'reg <trigger> = 0;' "
                        "was not found: has Amaranth's Verilog backend changed?")
    return text


def ports_of(component: wiring.Component, verilog_text: str) -> tuple[Port, ...]:
    """The ports of the top module in ``verilog_text`` (Verilog of ``component``), signed per signature."""
    declared: dict[str, tuple[str, int]] = {}
    for direction, msb, lsb, port_name in _PORT_DECL.findall(verilog_text.split("endmodule", 1)[0]):
        width = int(msb) - int(lsb) + 1 if msb else 1
        declared[port_name.lstrip("\\")] = (direction, width)

    members: list[Port] = []
    for path, member, _value in component.signature.flatten(component):
        port_name = "__".join(str(part) for part in path)
        shape = Shape.cast(member.shape)
        if port_name not in declared:
            raise ToolError(f"Verilog of {type(component).__qualname__} must have port {port_name!r}, "
                            f"but Amaranth emitted only {sorted(declared)}")
        direction, width = declared.pop(port_name)
        members.append(Port(port_name, direction, width, shape.signed))
    # What is left belongs to clock domains (clk, rst, <domain>_clk, ...), never signed.
    domains = [Port(port_name, direction, width) for port_name, (direction, width) in declared.items()]
    domains.sort(key=lambda port: (not port.name.endswith("clk"), port.name))
    return tuple(domains + members)


def write(component: wiring.Component, name: str, out_dir: Path | str, *,
          parameters: Mapping[str, Any] | None = None, latency: int | None = None) -> Path:
    """Write ``<out_dir>/<name>.v`` and its manifest ``<out_dir>/<name>.json``; return the ``.v`` path.

    ``parameters`` and ``latency`` default to the component's attributes of those names (if any).
    ``out_dir`` is created if needed; existing files of the same name are replaced.
    """
    text = generate(component, name)
    if parameters is None:
        parameters = dict(getattr(component, "parameters", {}) or {})
    if latency is None:
        latency = getattr(component, "latency", None)
    if latency is not None and (not isinstance(latency, int) or isinstance(latency, bool) or latency < 0):
        raise ConfigError(f"Latency must be a non-negative integer number of cycles, not {latency!r}")
    cls = type(component)
    manifest = Manifest(
        name=name,
        verilog=f"{name}.v",
        component=f"{cls.__module__}.{cls.__qualname__}",
        generator=f"amaranth {amaranth.__version__}",
        ports=ports_of(component, text),
        parameters=dict(parameters),
        latency=latency,
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    verilog_path = out / manifest.verilog
    _write_both({verilog_path: text, out / f"{name}.json": manifest.to_json()})
    _log.info("wrote %s (%d ports) and its manifest", verilog_path, len(manifest.ports))
    return verilog_path


def _write_both(files: Mapping[Path, str]) -> None:
    """Write every file or none: each goes to a temporary file beside it first, and only when all are
    written are they renamed into place (a failure removes the temporary files and leaves any earlier
    files of those names as they were)."""
    partial: dict[Path, Path] = {}
    try:
        for path, content in files.items():
            partial[path] = path.with_name(f".{path.name}.tmp")
            partial[path].write_text(content)
        for path in partial:
            if path.is_dir():
                raise IsADirectoryError(21, "Is a directory", str(path))
        for path, temporary in partial.items():
            temporary.replace(path)
    finally:
        for temporary in partial.values():
            temporary.unlink(missing_ok=True)


def read_manifest(path: Path | str) -> Manifest:
    """Read a manifest written by :func:`write` (give the ``.json`` or the ``.v`` path)."""
    return Manifest.from_json(Path(path).with_suffix(".json").read_text())


def _check(component: object, name: str) -> None:
    if not isinstance(component, wiring.Component):
        raise ConfigError(f"Component must be an amaranth.lib.wiring.Component, not {component!r}")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"Module name must be a Verilog identifier like 'mac_pe', not {name!r}")
