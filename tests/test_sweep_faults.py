"""Sweeps never lose or silently discard finished rows: kills and signals, torn journal lines, edited specs.

The fault matrix runs ``accel sweep`` with 2 workers on a small spec (fpga-small, two tiny SCALE-Sim
topologies, 12 rows: the second topology's rows are the slow ones), stops its main process with
SIGKILL, SIGTERM, one or two SIGINTs while workers compute, checks within seconds that no worker
survives, then resumes and compares the final table with an uninterrupted run's.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from sim.sweep import Space, SweepError, load_spec, read_results, run_sweep
from sim.sweep.results import Journal

ROOT = Path(__file__).resolve().parents[1]

SMALL_TOPOLOGY = """\
Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,
c1, 8, 8, 3, 3, 4, 8, 1,
c2, 6, 6, 3, 3, 8, 8, 1,
"""

LARGER_TOPOLOGY = """\
Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,
c1, 32, 32, 3, 3, 16, 32, 1,
c2, 30, 30, 3, 3, 32, 32, 1,
c3, 28, 28, 3, 3, 32, 64, 1,
"""

SPEC = """\
[sweep]
base = "fpga-small"
workloads = ["small.csv", "larger.csv"]

[params]
"array.size" = [2, 4]
"dram.bandwidth_bytes_per_cycle" = [2.0, 4.0, 8.0]
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _signals_as_at_a_terminal() -> None:
    """In the sweep's process before it starts: SIGINT handled by default, as a command typed at a
    terminal has it. A test run started in the background of a non-interactive shell (as CI may do)
    inherits SIGINT ignored, and a sweep rightly leaves an ignored SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _accel(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "accel.cli", *args], capture_output=True, text=True, env=_env(),
                          timeout=120)


def _write_spec(folder: Path, text: str = SPEC) -> Path:
    (folder / "small.csv").write_text(SMALL_TOPOLOGY)
    (folder / "larger.csv").write_text(LARGER_TOPOLOGY)
    spec = folder / "spec.toml"
    spec.write_text(text)
    return spec


def _descendants(pid: int) -> set[int]:
    """Live processes below ``pid`` (from /proc): the workers, and a fork server if the start method has one."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory) -> Path:
    """The spec (its workloads are paths, part of each row's key: every run here uses this one)."""
    return _write_spec(tmp_path_factory.mktemp("faults"))


@pytest.fixture(scope="module")
def uninterrupted(spec_file) -> pd.DataFrame:
    spec = load_spec(spec_file)
    return run_sweep(spec.space, spec.workloads, max_workers=1)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize(("signals", "code"), [
    ((signal.SIGKILL,), -signal.SIGKILL),
    ((signal.SIGTERM,), 128 + signal.SIGTERM),
    ((signal.SIGINT,), 128 + signal.SIGINT),
    ((signal.SIGINT, signal.SIGINT), 128 + signal.SIGINT),
], ids=["sigkill", "sigterm", "sigint", "sigint-twice"])
def test_a_stopped_sweep_leaves_no_worker_and_resumes_to_the_same_table(spec_file, uninterrupted, signals, code):
    spec = spec_file
    out = spec_file.with_name(f"r-{'-'.join(signal.Signals(s).name for s in signals)}.csv")
    journal = Journal(out).path
    proc = subprocess.Popen([sys.executable, "-m", "accel.cli", "sweep", str(spec), "--out", str(out),
                             "--workers", "2", "--no-progress"], env=_env(), start_new_session=True,
                            preexec_fn=_signals_as_at_a_terminal,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while not (journal.exists() and journal.read_bytes().count(b"\n") >= 1):
            assert proc.poll() is None, f"the sweep ended before it could be stopped: {proc.communicate()}"
            assert time.monotonic() < deadline, "no row finished within 60 s"
            time.sleep(0.01)
        workers = _descendants(proc.pid)
        assert len(workers) >= 2, f"expected 2 workers below {proc.pid}, found {sorted(workers)}"
        for i, signum in enumerate(signals):
            if i:
                time.sleep(0.05)
            os.kill(proc.pid, signum)
        _, stderr = proc.communicate(timeout=10)
        assert proc.returncode == code, stderr
        if signals[0] != signal.SIGKILL:
            assert stderr == ("accel: interrupted; finished rows are kept, run again with --resume to "
                              f"continue {out}\n")
        deadline = time.monotonic() + 5
        while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [pid for pid in workers if _running(pid)], "a worker outlived the sweep"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for pid in workers:  # never leave a process behind, whatever failed above
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
    assert not out.exists()
    finished = Journal(out)
    done = len(finished.read())
    assert 1 <= done < 12
    if signals[0] != signal.SIGKILL:  # a signal never tears a line: rows are written whole
        assert finished.unreadable == 0 and journal.read_bytes().endswith(b"\n")

    resumed = _accel("sweep", str(spec), "--out", str(out), "--resume", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert re.match(rf"computed {12 - done} of 12 rows \({done} reused\); 12 ok; wrote ", resumed.stdout)
    assert not journal.exists()
    pd.testing.assert_frame_equal(read_results(out), uninterrupted)


# -- a torn journal line --------------------------------------------------------------------------------

class _StopAfter:
    """A progress callback that interrupts the sweep after ``rows`` finished rows (as Ctrl-C would)."""

    def __init__(self, rows: int | None) -> None:
        self.rows = rows
        self.calls: list[tuple[int, int]] = []

    def __call__(self, done: int, total: int) -> None:
        self.calls.append((done, total))
        if self.rows is not None and len(self.calls) > 1 and done >= self.rows:
            raise KeyboardInterrupt


SPACE = Space(base="fpga-small", params={"array.size": [2, 4], "dram.bandwidth_bytes_per_cycle": [2.0, 4.0]})


def test_a_torn_journal_line_is_counted_cut_off_and_never_swallows_the_next_row(tmp_path, caplog):
    workload = [str(_write_spec(tmp_path).with_name("small.csv"))]
    out = tmp_path / "r.csv"
    journal = Journal(out)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(SPACE, workload, max_workers=1, out=out, progress=_StopAfter(2))
    lines = journal.path.read_bytes().splitlines(keepends=True)
    assert len(lines) == 2
    with journal.path.open("ab") as handle:  # a kill while the third row was being written
        handle.write(lines[0][:57])

    caplog.set_level(logging.WARNING, logger="sim.sweep")
    stop = _StopAfter(3)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(SPACE, workload, max_workers=1, out=out, resume=True, progress=stop)
    assert stop.calls[0] == (2, 4)  # both finished rows reused
    assert [r.getMessage() for r in caplog.records] == [
        f"{journal.path}: 1 journal line unreadable (torn when the sweep was killed); that row is computed again"]
    rows = journal.read()
    assert (len(rows), journal.unreadable) == (3, 0)  # the next row is on a line of its own, the torn tail gone

    frame = run_sweep(SPACE, workload, max_workers=1, out=out, resume=True, progress=(stop := _StopAfter(None)))
    assert stop.calls == [(3, 4), (4, 4)]  # nothing finished is computed again
    assert frame.attrs["unreadable_journal_lines"] == 0
    pd.testing.assert_frame_equal(frame, run_sweep(SPACE, workload, max_workers=1))


# -- resume with an edited spec --------------------------------------------------------------------------

def test_resume_with_an_edited_spec_refuses_to_drop_rows_and_says_what_changed(tmp_path):
    workload = [str(_write_spec(tmp_path).with_name("small.csv"))]
    out = tmp_path / "r.csv"
    first = run_sweep(Space(base="fpga-small", params={"array.size": [2]}), workload, max_workers=1, out=out)
    before = out.read_bytes()
    edited = Space(base="fpga-small", params={"array.size": [4]})
    with pytest.raises(SweepError) as error:
        run_sweep(edited, workload, max_workers=1, out=out, resume=True)
    assert str(error.value) == (f"{out}: holds 1 finished row this sweep does not contain (array.size = 2 is no "
                                "longer swept); resuming would drop it: restore the spec (to extend a sweep, add "
                                "values), or write to another output")
    assert out.read_bytes() == before and not Journal(out).exists()

    other = Space(base="fpga-small", params={"array.size": [2], "dram.bandwidth_bytes_per_cycle": [4.0]})
    with pytest.raises(SweepError, match=r"\(dram\.bandwidth_bytes_per_cycle is newly swept\)"):
        run_sweep(other, workload, max_workers=1, out=out, resume=True)
    with pytest.raises(SweepError,
                       match=r"\(the base design, its fpga_family or fpga_device, or the sample of points differs\)"):
        run_sweep(Space(base="gemmini", params={"array.size": [2]}), workload, max_workers=1, out=out, resume=True)

    calls = []
    extended = run_sweep(Space(base="fpga-small", params={"array.size": [2, 4]}), workload, max_workers=1, out=out,
                         resume=True, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 2), (2, 2)] and list(extended["array.size"]) == [2, 4]
    pd.testing.assert_frame_equal(extended.iloc[:1], first)


# -- results files ------------------------------------------------------------------------------------------

def test_csv_counts_are_integers_and_round_trip(tmp_path):
    workload = [str(_write_spec(tmp_path).with_name("small.csv"))]
    frame = run_sweep(Space(base="fpga-small", params={"array.size": [2], "scratchpad.size_bytes": ["16 KiB", 0]}),
                      workload, max_workers=1, out=tmp_path / "r.csv")
    assert list(frame["status"]) == ["ok", "invalid"]
    assert str(frame["total_cycles"].dtype) == "Int64" and str(frame["latency_s"].dtype) == "float64"
    with (tmp_path / "r.csv").open(newline="") as handle:
        ok, invalid = csv.DictReader(handle)
    assert re.fullmatch(r"[1-9][0-9]*", ok["total_cycles"]) and re.fullmatch(r"[1-9][0-9]*", ok["dsp"])
    assert re.fullmatch(r"[0-9.e-]+", ok["latency_s"]) and invalid["total_cycles"] == invalid["latency_s"] == "NaN"
    pd.testing.assert_frame_equal(read_results(tmp_path / "r.csv"), frame)


def test_a_csv_saved_again_by_a_spreadsheet_reads_back_the_same(tmp_path):
    """Excel's "CSV UTF-8" starts the file with a byte-order mark and ends lines with CRLF."""
    workload = [str(_write_spec(tmp_path).with_name("small.csv"))]
    out = tmp_path / "r.csv"
    frame = run_sweep(SPACE, workload, max_workers=1, out=out)
    out.write_bytes(b"\xef\xbb\xbf" + out.read_bytes().replace(b"\n", b"\r\n"))
    pd.testing.assert_frame_equal(read_results(out), frame)
    calls = []
    resumed = run_sweep(SPACE, workload, max_workers=1, out=out, resume=True,
                        progress=lambda done, total: calls.append((done, total)))
    assert calls == [(4, 4)]
    pd.testing.assert_frame_equal(resumed, frame)


# -- light imports ------------------------------------------------------------------------------------------

def test_reports_and_numerics_import_no_mapper_sweep_simpy_or_pandas():
    probe = ("import json, sys, {module}; print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
             "('mapper', 'simpy', 'pandas') or m == 'sim.sweep' or m.startswith('sim.sweep.'))))")

    def imported(module: str) -> list[str]:
        proc = subprocess.run([sys.executable, "-c", probe.format(module=module)], capture_output=True, text=True,
                              env=_env(), check=True)
        return json.loads(proc.stdout)

    assert [m for m in imported("reports") if m.split(".")[0] != "pandas"] == []  # reports may use pandas
    assert imported("sim.numerics") == []


# -- bad input: one line, exit 2 -------------------------------------------------------------------------------

def _cli_error(capsys, *argv: str) -> str:
    from accel.cli import main

    code = main(["sweep", *argv, "--no-progress"])
    out, err = capsys.readouterr()
    assert (code, out, err.count("\n")) == (2, "", 1), err
    assert err.startswith("accel: error: ")
    return err.removeprefix("accel: error: ").rstrip("\n")


@pytest.mark.parametrize(("text", "message"), [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "not a text file (not UTF-8 at byte 0)"),
    (b"sweep = 5\n", "sweep must be a table [sweep], not 5"),
    (b'params = [1, 2]\n[sweep]\nworkloads = ["resnet18"]\n', "params must be a table [params], not [1, 2]"),
    (b"[sweep\nworkloads = 1", "not valid TOML (Expected ']' at the end of a table declaration (at line 1, "
                                "column 7))"),
])
def test_a_garbage_spec_is_one_line(tmp_path, capsys, text, message):
    spec = tmp_path / "garbage.toml"
    spec.write_bytes(text)
    assert _cli_error(capsys, str(spec), "--out", str(tmp_path / "r.csv")) == f"{spec}: {message}"
    assert list(tmp_path.iterdir()) == [spec]


def test_a_spec_with_a_byte_order_mark_reads(tmp_path):
    spec = _write_spec(tmp_path)
    spec.write_bytes(b"\xef\xbb\xbf" + spec.read_bytes())
    assert load_spec(spec).space.size == 6


def test_seed_and_samples_are_checked(tmp_path, capsys):
    spec = str(_write_spec(tmp_path))
    out = str(tmp_path / "r.csv")
    assert _cli_error(capsys, spec, "--out", out, "--sample", "lhs", "--samples", "4", "--seed", "-5") == \
        f"{spec}: sweep.seed must be a non-negative integer, not -5"
    assert _cli_error(capsys, spec, "--out", out, "--sample", "random", "--samples", "40") == \
        f"{spec}: sweep.samples must be at most the 6 points of the space (sample = 'product' runs them all), not 40"


def test_lhs_draws_as_many_distinct_points_as_asked():
    params = {"array.size": [4, 8], "dram.bandwidth_bytes_per_cycle": [4.0, 8.0, 16.0]}
    for seed in range(5):  # 5 strata over 2 and 3 values: Latin-hypercube rows repeat
        points = Space(params=params, sample="lhs", samples=5, seed=seed).points()
        assert len({json.dumps(p, sort_keys=True) for p in points}) == 5
    assert len(Space(params=params, sample="lhs", samples=6, seed=1).points()) == 6  # all of them


def test_an_unreachable_dask_scheduler_is_one_line_within_seconds(tmp_path, capsys):
    pytest.importorskip("distributed")
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    spec = str(_write_spec(tmp_path))
    start = time.monotonic()
    message = _cli_error(capsys, spec, "--out", str(tmp_path / "r.csv"), "--dask", f"tcp://127.0.0.1:{port}")
    assert message == f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}: Connection refused"
    assert time.monotonic() - start < 10
    assert _cli_error(capsys, spec, "--out", str(tmp_path / "r.csv"), "--dask", "tcp://nowhere") == \
        "Dask scheduler address must be tcp://HOST:PORT, not 'tcp://nowhere'"
    assert not (tmp_path / "r.csv").exists() and not Journal(tmp_path / "r.csv").exists()


def test_resume_on_a_corrupted_output_or_journal_is_one_line(tmp_path, capsys):
    pytest.importorskip("pyarrow")
    spec = str(_write_spec(tmp_path))
    garbled = tmp_path / "g.parquet"
    garbled.write_bytes(b"PAR1 not really\n" * 4)
    assert re.fullmatch(rf"{re.escape(str(garbled))}: cannot be read as Parquet: .+",
                        _cli_error(capsys, spec, "--out", str(garbled), "--resume"))
    foreign = tmp_path / "f.csv"
    foreign.write_text("a,b\n1,2\n")
    assert _cli_error(capsys, spec, "--out", str(foreign), "--resume") == \
        f"{foreign}: is not a sweep result: no column 'point'"
    out = tmp_path / "r.csv"
    journal = Journal(out).path
    for line, problem in [('{"point": 0, "status": "ok"}', "has no 'key'"),
                          ('[1, 2]', "must be a JSON object, not list"),
                          ('{"key": "k", "status": "done", "reason": ""}', "status must be one of ok, invalid, "
                                                                           "error, not 'done'")]:
        journal.write_text(line + "\n")
        assert _cli_error(capsys, spec, "--out", str(out), "--resume") == \
            f"{journal}:1: not a row of this sweep's journal: {problem} (remove the file to compute those rows again)"
    assert journal.read_text() == line + "\n" and not out.exists()  # nothing touched


def test_without_resume_an_existing_output_is_refused(tmp_path, capsys):
    spec = str(_write_spec(tmp_path))
    out = tmp_path / "r.csv"
    out.write_text("anything")
    assert _cli_error(capsys, spec, "--out", str(out)) == \
        f"{out} exists; pass --resume (resume=True) to continue that sweep, or remove it"
    folder = tmp_path / "d.csv"
    folder.mkdir()
    assert _cli_error(capsys, spec, "--out", str(folder), "--resume") == \
        f"{folder}: is a directory; name the results file (.parquet or .csv)"
    assert out.read_text() == "anything"
