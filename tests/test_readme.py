"""Every command the README shows runs, in the order written, in a fresh copy of the repository.

The commands are read from README.md when the test runs (its ```sh blocks, continuation lines joined,
then its ```python blocks), so the test follows whatever the README says. A command runs as the user
types it, through ``bash`` in a copy of the tracked files (with ``../shared`` beside it, as in a
checkout next to the shared data), with ``accel`` and ``python`` on the ``PATH`` running this copy.

No command is skipped silently. Each rule below names the commands it concerns and why:

* ``SKIPPED``: commands that need what CI has not (a venv built with pip, the whole test suite,
  minutes of yosys/nextpnr synthesis). The ``fpga``-marked tests synthesize and build the same units.
* ``MUST_FAIL``: commands that need hardware that is not attached (a board on ``/dev/ttyUSB0``):
  they run and must fail with one ``accel: error:`` line and exit status 2.
* ``CHEAPER``: commands that run long as written run a smaller variant, stated here (the built-in
  sweep on 2 sampled points instead of 72 rows); a Dask scheduler address is replaced by a local
  Dask scheduler started for the test.

A rule that no longer matches any README command fails the test, so the rules cannot go stale.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Commands not run: (regex, reason).
SKIPPED = (
    (r"^make demo\b", "builds .venv with pip (network) and runs the full default sweep (minutes)"),
    (r"^make test\b", "runs the whole test suite, this test included"),
    (r"^accel fpga synth\b", "yosys + nextpnr synthesis (about 80 s); tests/fpga synthesizes the same units"),
    (r"^accel fpga build\b", "a board bitstream (1-2 min of synthesis); tests/fpga builds them"),
)
#: Commands that run and must fail with one clear error line: (regex, reason).
MUST_FAIL = (
    (r"^accel fpga run --port /dev/ttyUSB0\b", "no board is attached at /dev/ttyUSB0"),
)
#: Commands run as a cheaper variant: (regex, replacement, reason).
CHEAPER = (
    (r"^(accel sweep --out \S+)(\s|$)", r"\1 --sample random --samples 2 --seed 0\2",
     "the built-in sweep is 72 rows (minutes): 2 sampled points of it"),
    (r"^(accel sweep examples/quick_sweep\.toml --out \S+)(?!.*--sample\b)", r"\1 --sample random --samples 2 --seed 0",
     "24 rows, which tests/test_examples.py runs whole: 2 sampled points, resumed with the same sample"),
    (r"^(accel sweep \S+ .*--samples )\d+", r"\g<1>2", "tens of sampled points: 2"),
)
DASK_ADDRESS = "tcp://scheduler:8786"


@dataclass(frozen=True)
class Command:
    kind: str  # "sh" or "python"
    text: str


def readme_commands(text: str) -> list[Command]:
    """The README's shell commands (one per line, ``\\`` continuations joined, comments dropped) in
    order, then its Python blocks, each as one script."""
    shell, python = [], []
    for kind, body in re.findall(r"```(sh|python)\n(.*?)```", text, flags=re.S):
        if kind == "python":
            python.append(Command("python", body))
            continue
        for line in body.replace("\\\n", " ").splitlines():
            line = re.sub(r"(^|\s)#.*$", "", line).strip()
            if line:
                shell.append(Command("sh", re.sub(r"\s+", " ", line)))
    return shell + python


def _rule(command: str, rules: tuple) -> tuple | None:
    return next((rule for rule in rules if re.search(rule[0], command)), None)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory, shared_data) -> Path:
    """The tracked files copied into a fresh folder, ``../shared`` beside it, ``accel`` on the PATH."""
    base = tmp_path_factory.mktemp("fresh")
    repo = base / "accel"
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    (base / "shared").symlink_to(shared_data.parent)
    bin_dir = base / "bin"
    bin_dir.mkdir()
    for name, command in (("accel", f'exec "{sys.executable}" -m accel.cli "$@"'),
                          ("python", f'exec "{sys.executable}" "$@"')):
        (bin_dir / name).write_text(f"#!/bin/sh\n{command}\n")
        (bin_dir / name).chmod(0o755)
    return repo


@pytest.fixture(scope="module")
def dask_address():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp",
                                  dashboard_address=":0") as cluster:
        yield cluster.scheduler_address


@pytest.mark.slow
def test_every_readme_command_runs_in_order(checkout, request):
    readme = (checkout / "README.md").read_text()
    commands = readme_commands(readme)
    assert len(commands) > 10, "the README's commands were not found"
    shell = [c.text for c in commands if c.kind == "sh"]
    for rules in (SKIPPED, MUST_FAIL, CHEAPER):
        for rule in rules:
            assert any(re.search(rule[0], c) for c in shell), f"no README command matches {rule[0]!r} any more"
    env = {**os.environ, "PATH": f"{checkout.parent / 'bin'}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(checkout), "MPLBACKEND": "Agg", "ACCEL_FPGA_CACHE": str(checkout / ".fpga-cache")}
    log, failures = [], []
    for command in commands:
        text = command.text
        if command.kind == "sh" and (skip := _rule(text, SKIPPED)):
            log.append(f"skipped  {text}  ({skip[1]})")
            continue
        if command.kind == "sh":
            for pattern, replacement, _ in CHEAPER:
                text = re.sub(pattern, replacement, text)
        if DASK_ADDRESS in text:
            text = text.replace(DASK_ADDRESS, request.getfixturevalue("dask_address"))
        argv = ["bash", "-c", text] if command.kind == "sh" else [sys.executable, "-c", text]
        start = time.perf_counter()
        proc = subprocess.run(argv, cwd=checkout, env=env, capture_output=True, text=True, timeout=300)
        seconds = time.perf_counter() - start
        shown = text if command.kind == "sh" else f"python block: {text.splitlines()[-1]}"
        log.append(f"{seconds:5.1f} s  {shown}")
        if command.kind == "sh" and (fail := _rule(text, MUST_FAIL)):
            error = proc.stderr.splitlines()
            if proc.returncode != 2 or len(error) != 1 or not error[0].startswith("accel: error: "):
                failures.append(f"{text} ({fail[1]}) must fail with one 'accel: error:' line and exit 2, "
                                f"got exit {proc.returncode}: {proc.stderr[-500:]}")
            continue
        if proc.returncode != 0:
            failures.append(f"{shown}: exit {proc.returncode}\n{proc.stderr[-1500:]}")
    print("\n".join(log))
    assert not failures, "\n\n".join(failures)


def test_the_readme_spec_is_the_shipped_example():
    readme = (ROOT / "README.md").read_text()
    if "examples/spec.toml" not in readme:
        pytest.skip("the README no longer names examples/spec.toml")
    shown = readme[readme.index("`examples/spec.toml` is this one"):]
    block = re.search(r"```toml\n(.*?)```", shown, flags=re.S).group(1)
    assert tomllib.loads(block) == tomllib.loads((ROOT / "examples" / "spec.toml").read_text()), \
        "the README's spec and examples/spec.toml differ: update examples/spec.toml"
