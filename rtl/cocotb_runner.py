"""Build and run a cocotb testbench on generated Verilog, from Python (and so from pytest).

:func:`run_cocotb` is the one way our tests launch a simulator::

    result = run_cocotb(toplevel="mac_pe", component=MacPE(), test_module=HERE / "pe_tb.py",
                        build_dir=tmp_path, parameters={"seed": 1, "count": 2000})

It writes the component's Verilog and manifest (:func:`rtl.verilog.write`) into ``build_dir``, builds
it with ``cocotb_tools.runner`` (Icarus Verilog by default, timescale 1 ns / 1 ps), runs every cocotb
test of ``test_module`` (or the ``testcase`` names given) and reads the xUnit ``results.xml`` that
cocotb writes. It returns a :class:`CocotbResult` when every test passed and raises
:class:`CocotbTestFailure` (an ``AssertionError``, so pytest reports it as a failed test) naming
each failing cocotb test and its message otherwise; ``check=False`` returns the result either way.

Inside the simulator, the testbench reads what the launcher knows with :func:`testbench_parameters`
(the ``parameters`` dict, as ``<build_dir>/parameters.json`` whose path the environment carries, so
build and test share one dict) and
:func:`testbench_manifest` (the ports, parameters and latency of the generated Verilog).

Waveforms (``<build_dir>/<toplevel>.fst``) are written only when ``waves=True`` or the environment
variable ``ACCEL_WAVES=1`` is set. The simulator is ``icarus`` unless ``simulator`` or ``ACCEL_SIM``
names ``verilator`` (which cocotb 2 supports from Verilator 5.036).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amaranth.lib import wiring

from accel.errors import ConfigError, ToolError
from rtl.verilog import Manifest, read_manifest, write

__all__ = [
    "CocotbCase",
    "CocotbResult",
    "CocotbTestFailure",
    "run_cocotb",
    "testbench_parameters",
    "testbench_manifest",
    "PARAMETERS_ENV",
    "PARAMETERS_FILE",
    "MANIFEST_ENV",
]

_log = logging.getLogger(__name__)

PARAMETERS_ENV = "ACCEL_TB_PARAMETERS"
"""Environment variable carrying the path of the JSON file of the ``parameters`` dict into the simulator.
(A path, not the JSON: Linux limits one environment string to 128 KiB, less than a bench's programs.)"""
PARAMETERS_FILE = "parameters.json"
"""The file in ``build_dir`` that :func:`run_cocotb` writes the ``parameters`` dict to."""
MANIFEST_ENV = "ACCEL_TB_MANIFEST"
"""Environment variable carrying the path of the Verilog manifest into the simulator."""

_TIMESCALE = ("1ns", "1ps")
_MIN_VERILATOR = (5, 36)
_INSTALL_HINTS = {
    "iverilog": "install Icarus Verilog, e.g. 'apt-get install iverilog' or 'brew install icarus-verilog'",
    "vvp": "install Icarus Verilog, e.g. 'apt-get install iverilog' or 'brew install icarus-verilog'",
    "verilator": "install Verilator 5.036 or newer (https://verilator.org), or use simulator='icarus'",
}


@dataclass(frozen=True)
class CocotbCase:
    """One cocotb test as recorded in ``results.xml``."""

    name: str
    passed: bool
    message: str = ""  # the failure or error message, empty when passed
    sim_time_ns: float | None = None


@dataclass(frozen=True)
class CocotbResult:
    """The outcome of one :func:`run_cocotb` call."""

    toplevel: str
    simulator: str
    results_xml: Path
    log_file: Path
    cases: tuple[CocotbCase, ...]
    waves: Path | None = None

    @property
    def passed(self) -> bool:
        """True when at least one test ran and none failed."""
        return bool(self.cases) and all(case.passed for case in self.cases)

    @property
    def failed(self) -> tuple[CocotbCase, ...]:
        return tuple(case for case in self.cases if not case.passed)

    def summary(self) -> str:
        lines = [f"{len(self.cases) - len(self.failed)} of {len(self.cases)} cocotb tests passed on "
                 f"{self.toplevel} ({self.simulator}); log: {self.log_file}"]
        lines += [f"  FAIL {case.name}: {case.message}" for case in self.failed]
        if not self.cases:
            lines.append("  no cocotb test ran (misspelled testcase, or none in the test module?)")
        return "\n".join(lines)


class CocotbTestFailure(AssertionError):
    """At least one cocotb test failed (or none ran); ``result`` holds the details."""

    def __init__(self, result: CocotbResult) -> None:
        super().__init__(result.summary())
        self.result = result


def run_cocotb(
    *,
    toplevel: str,
    test_module: str | Path,
    build_dir: Path | str,
    component: wiring.Component | None = None,
    verilog_sources: Sequence[Path | str] = (),
    parameters: Mapping[str, Any] | None = None,
    hdl_parameters: Mapping[str, object] | None = None,
    extra_env: Mapping[str, str] | None = None,
    testcase: str | Sequence[str] | None = None,
    seed: int | None = None,
    simulator: str | None = None,
    waves: bool = False,
    check: bool = True,
) -> CocotbResult:
    """Build ``component`` (or ``verilog_sources``) and run the cocotb tests of ``test_module`` on it.

    ``test_module`` is a module name importable from ``sys.path`` or the path of a ``.py`` file (its
    folder is put on the simulator's ``PYTHONPATH``). ``parameters`` is written as JSON to
    ``<build_dir>/parameters.json`` for :func:`testbench_parameters` (any size); ``hdl_parameters``
    are Verilog parameters of hand-written sources (Amaranth's Verilog has none). ``seed`` fixes cocotb's random seed.
    Raises :class:`~accel.errors.ToolError` if the simulator is missing or the simulation ended
    without results, :class:`CocotbTestFailure` if a test failed and ``check`` is true.
    """
    simulator = (simulator or os.environ.get("ACCEL_SIM") or "icarus").lower()
    _require_simulator(simulator)
    if (component is None) == (not verilog_sources):
        raise ConfigError("run_cocotb needs exactly one of component or verilog_sources")
    build = Path(build_dir).resolve()
    build.mkdir(parents=True, exist_ok=True)
    waves = waves or os.environ.get("ACCEL_WAVES", "") == "1"

    env = dict(extra_env or {})
    if component is not None:
        sources = [write(component, toplevel, build)]
        env[MANIFEST_ENV] = str(sources[0].with_suffix(".json"))
    else:
        sources = [Path(source).resolve() for source in verilog_sources]
    parameters_file = build / PARAMETERS_FILE
    parameters_file.write_text(json.dumps(dict(parameters or {}), sort_keys=True))
    env[PARAMETERS_ENV] = str(parameters_file)
    # cocotb's runner lets os.environ override extra_env: refuse silently lost settings.
    clashes = sorted(key for key in env if key in os.environ and os.environ[key] != env[key])
    if clashes:
        raise ConfigError(f"Environment variables {clashes} are already set in os.environ; "
                          "cocotb would ignore the values given to run_cocotb")

    module_name, module_dir = _module(test_module)
    from cocotb_tools.runner import get_runner  # heavy import, only when running

    runner = get_runner(simulator)
    results_xml = build / "results.xml"
    log_file = build / "sim.log"
    results_xml.unlink(missing_ok=True)
    _log.info("building %s from %s with %s", toplevel, [str(s) for s in sources], simulator)
    try:
        runner.build(
            sources=sources,
            hdl_toplevel=toplevel,
            build_dir=build,
            parameters=dict(hdl_parameters or {}),
            timescale=_TIMESCALE,
            waves=waves,
            always=True,
            log_file=build / "build.log",
        )
    except (RuntimeError, SystemExit) as error:
        raise ToolError(f"{simulator} could not build {toplevel}: {error}; see {build / 'build.log'}\n"
                        f"{_tail(build / 'build.log')}") from None

    saved_path = list(sys.path)
    if module_dir is not None:
        sys.path.insert(0, str(module_dir))  # the runner hands sys.path to the simulator's Python
    try:
        runner.test(
            test_module=module_name,
            hdl_toplevel=toplevel,
            testcase=testcase,
            seed=seed,
            extra_env=env,
            waves=waves,
            build_dir=build,
            test_dir=build,
            results_xml=str(results_xml),
            timescale=_TIMESCALE,
            log_file=log_file,
        )
    except (RuntimeError, SystemExit) as error:
        # The runner calls sys.exit() under pytest when a test fails: we read results.xml instead.
        _log.debug("cocotb runner stopped with %r", error)
    finally:
        sys.path[:] = saved_path

    if not results_xml.is_file():
        raise ToolError(f"The simulation of {toplevel} ended without writing {results_xml}; "
                        f"see {log_file}\n{_tail(log_file)}")
    result = CocotbResult(
        toplevel=toplevel,
        simulator=simulator,
        results_xml=results_xml,
        log_file=log_file,
        cases=_read_results(results_xml),
        waves=build / f"{toplevel}.fst" if waves else None,
    )
    _log.info("%s", result.summary())
    if check and not result.passed:
        raise CocotbTestFailure(result)
    return result


def testbench_parameters() -> dict[str, Any]:
    """Inside a cocotb test: the ``parameters`` dict given to :func:`run_cocotb` (empty if none)."""
    path = os.environ.get(PARAMETERS_ENV)
    return json.loads(Path(path).read_text()) if path else {}


def testbench_manifest() -> Manifest:
    """Inside a cocotb test: the manifest of the component :func:`run_cocotb` generated."""
    path = os.environ.get(MANIFEST_ENV)
    if not path:
        raise ConfigError(f"{MANIFEST_ENV} is not set: run this testbench through rtl.run_cocotb "
                          "with a component")
    return read_manifest(path)


# -- helpers -------------------------------------------------------------------------------------

def _require_simulator(simulator: str) -> None:
    if simulator == "icarus":
        for tool in ("iverilog", "vvp"):
            if shutil.which(tool) is None:
                raise ToolError(f"Icarus Verilog's {tool!r} is not on PATH: {_INSTALL_HINTS[tool]}")
    elif simulator == "verilator":
        if shutil.which("verilator") is None:
            raise ToolError(f"'verilator' is not on PATH: {_INSTALL_HINTS['verilator']}")
        version = _verilator_version()
        if version < _MIN_VERILATOR:
            raise ToolError(f"cocotb 2 needs Verilator 5.036 or newer, not {'.'.join(map(str, version))}: "
                            f"{_INSTALL_HINTS['verilator']}")
    else:
        raise ConfigError(f"Simulator must be 'icarus' or 'verilator', not {simulator!r}")


def _verilator_version() -> tuple[int, int]:
    output = subprocess.run(["verilator", "--version"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"Verilator (\d+)\.(\d+)", output)
    return (int(match[1]), int(match[2])) if match else (0, 0)


def _module(test_module: str | Path) -> tuple[str, Path | None]:
    """Module name and the folder to import it from (None: already importable)."""
    path = Path(test_module)
    if isinstance(test_module, Path) or str(test_module).endswith(".py"):
        if not path.is_file():
            raise ConfigError(f"cocotb test module must be an existing .py file, not {str(path)!r}")
        return path.stem, path.resolve().parent
    if not re.match(r"^[A-Za-z_][\w.]*$", str(test_module)):
        raise ConfigError(f"cocotb test module must be a module name or a .py path, not {test_module!r}")
    return str(test_module), None


def _read_results(results_xml: Path) -> tuple[CocotbCase, ...]:
    cases = []
    for testcase in ElementTree.parse(results_xml).getroot().iter("testcase"):
        problems = [child for child in testcase if child.tag in ("failure", "error")]
        message = "; ".join(
            (problem.get("message") or problem.text or problem.tag).strip() for problem in problems
        )
        properties = {prop.get("name"): prop.get("value") for prop in testcase.iter("property")}
        sim_time = properties.get("sim_time_duration") if properties.get("sim_time_unit") == "ns" else None
        cases.append(CocotbCase(
            name=testcase.get("name", "?"),
            passed=not problems,
            message=message,
            sim_time_ns=float(sim_time) if sim_time else None,
        ))
    return tuple(cases)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
