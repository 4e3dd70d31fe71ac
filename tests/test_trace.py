"""The Chrome / Perfetto trace-event export: valid JSON, one named track per unit, one slice per command."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest
from test_lower_and_simulate import conv_relu_fc

from accel import config
from accel.commands import Compute, Load, Store, Vector
from mapper import map_graph
from sim import Result, simulate
from sim.trace import to_perfetto, write_perfetto


@pytest.fixture(scope="module")
def gemmini_run() -> Result:
    return simulate(map_graph(conv_relu_fc(), config.load("gemmini")))


@pytest.fixture(scope="module")
def two_channel_run() -> Result:
    """700 MHz (a cycle is not a whole number of ns) and two DMA channels that DRAM can feed at once."""
    text = config.dumps(config.load("tpu-v1")).replace("channels = 1", "channels = 2")
    text = text.replace("bandwidth_bytes_per_cycle = 48.57\nlatency_cycles = 100",
                        "bandwidth_bytes_per_cycle = 97.14\nlatency_cycles = 100")
    arch = config.loads(text)
    assert arch.dma.channels == 2 and arch.dram.bandwidth_bytes_per_cycle == 97.14
    return simulate(map_graph(conv_relu_fc(), arch))


def _load(result: Result, tmp_path, **options) -> dict:
    path = write_perfetto(result, tmp_path / "run.json", **options)
    with open(path) as file:
        return json.load(file)


def _thread_names(trace: dict) -> dict[int, str]:
    return {e["tid"]: e["args"]["name"] for e in trace["traceEvents"] if e["ph"] == "M" and e["name"] == "thread_name"}


def test_the_file_is_trace_event_json(gemmini_run, tmp_path):
    trace = _load(gemmini_run, tmp_path)
    assert set(trace) >= {"traceEvents", "displayTimeUnit"}
    assert trace["displayTimeUnit"] == "ns"
    for event in trace["traceEvents"]:
        assert {"ph", "ts", "pid", "tid", "name"} <= set(event), event
        assert event["ph"] in {"M", "X", "C"}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # no temporary file left behind
    reference = tmp_path / "plain.txt"
    reference.write_text("")
    assert (tmp_path / "run.json").stat().st_mode == reference.stat().st_mode  # the mode open() would give


def test_one_slice_per_command_with_its_details(gemmini_run, tmp_path):
    trace = _load(gemmini_run, tmp_path)
    slices = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    commands = gemmini_run.plan.commands
    assert len(slices) == len(commands)
    assert sorted(e["args"]["command"] for e in slices) == list(range(len(commands)))
    for event in slices:
        command = commands[event["args"]["command"]]
        assert event["dur"] >= 0
        assert event["name"] == f"{type(command).__name__} {command.layer}"
        assert event["args"]["layer"] == command.layer
        assert event["args"]["energy_pj"] > 0
        if isinstance(command, Load | Store):
            assert event["args"]["size_bytes"] == command.size_bytes
        elif isinstance(command, Compute):
            assert event["args"]["macs"] == command.macs
        else:
            assert isinstance(command, Vector) and event["args"]["elements"] == command.elements


def test_time_is_cycles_over_the_clock_in_microseconds(gemmini_run):
    trace = to_perfetto(gemmini_run)
    by_command = {e["args"]["command"]: e for e in trace["traceEvents"] if e["ph"] == "X"}
    for event in gemmini_run.trace:  # 1 GHz: a cycle is 1 ns = 0.001 us
        assert by_command[event.command]["ts"] == pytest.approx(event.start / 1000)
        assert by_command[event.command]["dur"] == pytest.approx((event.end - event.start) / 1000)


def test_one_named_track_per_unit(gemmini_run):
    trace = to_perfetto(gemmini_run)
    names = _thread_names(trace)
    assert sorted(names.values()) == ["DMA 0", "array", "vector"]
    process = [e for e in trace["traceEvents"] if e["ph"] == "M" and e["name"] == "process_name"]
    assert [p["args"]["name"] for p in process] == ["gemmini: conv_relu_fc"]
    units = {"Load": "DMA 0", "Store": "DMA 0", "Compute": "array", "Vector": "vector"}
    for event in trace["traceEvents"]:
        if event["ph"] == "X":
            assert names[event["tid"]] == units[event["name"].split()[0]]


def test_every_dma_channel_has_a_track_and_slices_on_a_track_never_overlap(two_channel_run):
    trace = to_perfetto(two_channel_run)
    names = _thread_names(trace)
    assert sorted(names.values()) == ["DMA 0", "DMA 1", "array", "vector"]
    tracks: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for event in trace["traceEvents"]:
        if event["ph"] == "X":
            tracks[event["tid"]].append((event["ts"], event["dur"]))
    assert {names[t] for t in tracks} == {"DMA 0", "DMA 1", "array", "vector"}
    for slices in tracks.values():
        slices.sort()
        # Perfetto reads ts in whole nanoseconds; compare there, as it will.
        ends = [round((ts + dur) * 1000) for ts, dur in slices]
        starts = [round(ts * 1000) for ts, _ in slices]
        assert all(end <= start for end, start in zip(ends, starts[1:], strict=False))


def test_power_counters_are_optional(gemmini_run, tmp_path):
    assert not [e for e in to_perfetto(gemmini_run)["traceEvents"] if e["ph"] == "C"]
    trace = _load(gemmini_run, tmp_path, power_window_cycles=100_000)
    counters = [e for e in trace["traceEvents"] if e["ph"] == "C"]
    windows = -(-gemmini_run.total_cycles // 100_000)
    assert len(counters) == windows + 1  # one per window, and a zero at the end of the run
    assert all(e["name"] == "power" and e["args"]["W"] >= 0 for e in counters)
    assert counters[-1]["ts"] == pytest.approx(gemmini_run.total_cycles / 1000)


def test_writing_replaces_an_existing_file(gemmini_run, tmp_path):
    path = tmp_path / "run.json"
    path.write_text("stale")
    write_perfetto(gemmini_run, path)
    assert json.loads(path.read_text())["otherData"]["total_cycles"] == gemmini_run.total_cycles
