"""The sweep report: built from a real tiny sweep (designs really mapped and simulated), opened in headless
Chromium (every image loads, no console errors), its content and atomic writing, the plots as PNG and
SVG, and ``accel report``'s errors."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

import mapper
import sim
from accel import config
from accel.cli import main
from accel.errors import AccelError
from mapper import MapOptions
from reports import sweep_plots
from reports.html import write_html_report
from reports.pareto import sensitivity
from reports.sweep_plots import layer_time_breakdown
from workloads.builder import GraphBuilder

METRICS = ("total_cycles", "latency_s", "throughput_per_s", "macs", "energy_j", "average_power_w", "edp_js",
           "dram_bytes", "array_utilization", "peak_macs_per_cycle", "clock_hz", "luts", "flip_flops", "dsp",
           "bram", "fmax_mhz")
PARAMS = ("array.rows", "array.cols", "mapper.allocator")


def tiny_cnn():
    b = GraphBuilder("tiny_cnn")
    x = b.input("x", (1, 8, 8, 8))
    y = b.activation(b.conv(x, 16, 3, 1, 1, name="conv1"), "relu", "relu1")
    b.linear(b.flatten(y, 1, "flatten"), 10, name="fc")
    return b.build()


def tiny_mlp():
    b = GraphBuilder("tiny_mlp")
    x = b.input("x", (4, 64))
    b.linear(b.activation(b.linear(x, 32, name="fc1"), "relu", "relu1"), 16, name="fc2")
    return b.build()


def design(rows: int, cols: int):
    base = config.load("fpga-small")
    return dataclasses.replace(base, array=dataclasses.replace(base.array, rows=rows, cols=cols))


@pytest.fixture(scope="module")
def sweep():
    """A sweep-like frame (the schema of sim.sweep) of fpga-small variants on two tiny workloads, every ok
    row really mapped and simulated, and the rebuild function that gives each row's objects back."""
    points = [(r, c, a) for r in (2, 4) for c in (4, 8) for a in ("greedy", "none")] + [(0, 4, "none")]
    rows, objects = [], {}
    for point, (r, c, allocator) in enumerate(points):
        for graph in (tiny_cnn(), tiny_mlp()):
            params = {"array.rows": r, "array.cols": c, "mapper.allocator": allocator}
            row = {"point": point, "key": f"k{point}-{graph.name}", "workload": graph.name, "arch": "fpga-small",
                   **params, "params": json.dumps(params), "status": "ok", "reason": "",
                   **{m: math.nan for m in METRICS}}
            try:
                arch, options = design(r, c), MapOptions(allocator=allocator)
            except AccelError as exc:
                row.update(status="invalid", reason=str(exc))
                rows.append(row)
                continue
            summary = sim.simulate(mapper.map_graph(graph, arch, options)).summary()
            latency, energy = summary["latency_s"], summary["energy_pj"] * 1e-12
            row.update(total_cycles=summary["total_cycles"], latency_s=latency, throughput_per_s=1 / latency,
                       macs=summary["macs"], energy_j=energy, average_power_w=summary["average_power_w"],
                       edp_js=energy * latency, dram_bytes=summary["dram_bytes"],
                       array_utilization=summary["array_utilization"], peak_macs_per_cycle=arch.peak_macs_per_cycle,
                       clock_hz=arch.clock_hz)
            rows.append(row)
            objects[(point, graph.name)] = (arch, graph, options)
    frame = pd.DataFrame(rows)

    def rebuild(row: pd.Series):
        return objects[(int(row["point"]), row["workload"])]

    return frame, rebuild


def test_the_sweep_fixture_is_a_real_sweep(sweep):
    df, _ = sweep
    assert len(df) == 18 and df["status"].value_counts().to_dict() == {"ok": 16, "invalid": 2}
    assert set(df.loc[df["status"] == "invalid", "reason"]) == {"rows must be a positive integer, not 0"}
    ok = df[df["status"] == "ok"]
    assert (ok["total_cycles"] > 0).all() and ok["latency_s"].notna().all()
    # more PEs, fewer cycles: the 4x8 array beats the 2x4 one on both workloads
    small = ok[(ok["array.rows"] == 2) & (ok["array.cols"] == 4)].groupby("workload")["total_cycles"].first()
    big = ok[(ok["array.rows"] == 4) & (ok["array.cols"] == 8)].groupby("workload")["total_cycles"].first()
    assert (big < small).all()


def test_sensitivity_of_a_real_sweep(sweep):
    df, _ = sweep
    table = sensitivity(df, "total_cycles", list(PARAMS))
    spread = table.groupby("param")["spread"].first()
    # keeping tensors on chip (greedy) against none changes the run; so does the array's shape
    assert spread["mapper.allocator"] > 1.0
    assert spread["array.rows"] > 1.0 and spread["array.cols"] > 1.0


@pytest.fixture(scope="module")
def report(sweep, tmp_path_factory) -> Path:
    df, rebuild = sweep
    out = tmp_path_factory.mktemp("report")
    return write_html_report(df, out, spec={"base": "fpga-small", "params": {p: "..." for p in PARAMS}},
                             rebuild=rebuild, drill_down=3, title="Tiny <sweep> & co")


def test_report_is_one_self_contained_file(report):
    assert report.name == "index.html" and [p.name for p in report.parent.iterdir()] == ["index.html"]
    page = report.read_text()
    assert "<script" not in page and "<link" not in page
    assert not re.search(r"""(src|href)=['"]?(https?:|//|file:)""", page)
    sources = re.findall(r"<img [^>]*src='([^']*)'", page)
    assert len(sources) >= 3 + 2 * 5 and all(s.startswith("data:image/png;base64,") for s in sources)


def test_report_content(report, sweep):
    df, _ = sweep
    page = report.read_text()
    assert "<title>Tiny &lt;sweep&gt; &amp; co</title>" in page
    assert "<td>16 ok, 2 invalid, 0 error</td>" in page
    assert "<td>tiny_cnn, tiny_mlp</td>" in page and "<td>9 (18 rows)</td>" in page
    assert "<td>array.rows</td><td class=num>3</td><td>0, 2, 4</td>" in page
    assert "<td>invalid</td><td class=num>2</td><td>rows must be a positive integer, not 0</td><td>8</td>" in page
    # best per objective and workload, then the knees, one drill-down per point and workload, lettered:
    # point 6 (4x8, greedy) is the fastest and the most frugal on both workloads (its weight tiles stay
    # on chip for their columns), so it is also each front's knee
    drills = re.findall(r"<section class='section drill'><h3>([^<]*)</h3>", page)
    assert drills == ["A: point 6 on tiny_cnn (best latency_s, best energy_j, knee of the Pareto front)",
                      "B: point 6 on tiny_mlp (best latency_s, best energy_j, knee of the Pareto front)"]
    ok = df[df["status"] == "ok"]
    assert ok.loc[ok.groupby("workload")["latency_s"].idxmin(), "point"].tolist() == [6, 6]
    assert ok.loc[ok.groupby("workload")["energy_j"].idxmin(), "point"].tolist() == [6, 6]
    assert page.count("matches the sweep") == 2 and "differs from the sweep" not in page
    assert page.count("alt='memory map'") == sum("mapper.allocator = greedy" in page.split(d)[1].split("</section>")[0]
                                                  for d in drills)


def test_report_renders_in_headless_chromium(report, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium not installed (apt-get install chromium)")
    probe = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || e.target && e.target.src)), true);
const original = console.error;
console.error = (...a) => { window.__errors.push(a.join(' ')); original(...a); };
window.addEventListener('load', () => {
  const images = Array.from(document.images);
  const loaded = images.filter(i => i.complete && i.naturalWidth > 0).length;
  const div = document.createElement('div');
  div.id = 'check';
  const errors = window.__errors;
  div.textContent = `images ${loaded}/${images.length} errors ${errors.length}: ${errors.join(' | ')}`;
  document.body.appendChild(div);
});
</script>"""
    page = tmp_path / "index.html"
    page.write_text(report.read_text().replace("<head>", "<head>" + probe, 1))
    done = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r"<div id=\"check\">images (\d+)/(\d+) errors (\d+):([^<]*)</div>", done.stdout)
    assert found, f"the probe did not run: {done.stdout[-500:]!r} {done.stderr[-1000:]!r}"
    loaded, total, errors = int(found[1]), int(found[2]), int(found[3])
    assert total == report.read_text().count("<img ") and total >= 3 + 2 * 5  # as in the self-contained test
    assert loaded == total, f"only {loaded} of {total} images loaded"
    assert errors == 0, found[4]
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line and "page.as_uri" not in line]
    assert console == [], console


def test_nothing_is_written_when_the_report_fails(sweep, tmp_path):
    df, rebuild = sweep
    (tmp_path / "index.html").write_text("the previous report")

    def broken(row):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="^boom$"):
        write_html_report(df, tmp_path, rebuild=broken)
    assert [p.name for p in tmp_path.iterdir()] == ["index.html"]
    assert (tmp_path / "index.html").read_text() == "the previous report"


def test_a_point_that_cannot_be_rebuilt_is_noted_not_fatal(sweep, tmp_path):
    df, _ = sweep

    def unavailable(row):
        raise AccelError(f"point {row['point']} cannot be rebuilt here")

    page = write_html_report(df, tmp_path, rebuild=unavailable, drill_down=1).read_text()
    assert page.count("Could not map and simulate this point again: point ") == 1


def test_three_objectives_and_no_drill_down(sweep, tmp_path):
    df, _ = sweep
    page = write_html_report(df, tmp_path, objectives=("latency_s", "energy_j", "throughput_per_s"),
                             drill_down=0).read_text()
    assert "throughput_per_s (higher is better)" in page and "section drill" not in page
    assert page.count("<img ") == 4  # the Pareto plot and one sensitivity plot per objective


def run_plots(df, rebuild):
    ok = df[df["status"] == "ok"]
    arch, graph, options = rebuild(ok.iloc[0])
    result = sim.simulate(mapper.map_graph(graph, arch, options))
    from mapper.memory import allocate, problem_from_graph

    problem = problem_from_graph(graph, arch)
    return {
        "pareto2": sweep_plots.plot_pareto(df, ["latency_s", "energy_j"]),
        "pareto3": sweep_plots.plot_pareto(df, ["latency_s", "energy_j", "dram_bytes"]),
        "sensitivity": sweep_plots.plot_sensitivity(sensitivity(df, "latency_s", list(PARAMS)), objective="latency_s"),
        "roofline": sweep_plots.plot_roofline(result),
        "latency": sweep_plots.plot_layer_latency(result),
        "energy": sweep_plots.plot_layer_energy(result),
        "units": sweep_plots.plot_unit_utilization(result),
        "power": sweep_plots.plot_power_timeline(result),
        "memory": sweep_plots.plot_memory_map(problem, allocate(problem, method="greedy")),
    }


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_plots_save_as_png_and_svg(sweep, fmt):
    import matplotlib.pyplot as plt

    df, rebuild = sweep
    for name, fig in run_plots(df, rebuild).items():
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt)
        plt.close(fig)
        data = buffer.getvalue()
        assert data.startswith(b"\x89PNG") if fmt == "png" else b"<svg" in data[:1000], name
        assert len(data) > 5000, name


def test_roofline_points_are_each_layers_intensity_and_attained_rate(sweep):
    import matplotlib.pyplot as plt

    df, rebuild = sweep
    arch, graph, options = rebuild(df[df["status"] == "ok"].iloc[0])
    result = sim.simulate(mapper.map_graph(graph, arch, options))
    fig = sweep_plots.plot_roofline(result)
    layers = result.layers().query("macs > 0 and cycles > 0")
    points = [tuple(p) for c in fig.axes[0].collections for p in c.get_offsets()]
    dram = layers["dram_read_bytes"] + layers["dram_write_bytes"]
    expected = [(m / d, m / c) for m, d, c in zip(layers["macs"], dram, layers["cycles"], strict=True)]
    assert [v for p in sorted(points) for v in p] == pytest.approx([v for p in sorted(expected) for v in p])
    roof = fig.axes[0].lines[0].get_ydata()
    assert max(roof) == arch.peak_macs_per_cycle
    plt.close(fig)


def test_layer_time_breakdown_adds_up_to_each_span(sweep):
    df, rebuild = sweep
    arch, graph, options = rebuild(df[(df["status"] == "ok") & (df["workload"] == "tiny_cnn")].iloc[0])
    result = sim.simulate(mapper.map_graph(graph, arch, options))
    breakdown = layer_time_breakdown(result).set_index("layer")
    parts = breakdown[["array", "vector", "dma_only", "waiting"]]
    assert (parts >= 0).all().all()
    assert (parts.sum(axis=1) == breakdown["cycles"]).all()
    layers = result.layers().set_index("layer")
    assert (breakdown["array"] == layers["array_cycles"]).all()  # one array: its commands never overlap
    assert breakdown.loc["relu1", "vector"] == layers.loc["relu1", "vector_cycles"] > 0
    assert breakdown.loc["conv1", "dma_only"] > 0  # loading the first tile's operands, before any compute
    assert breakdown.loc["flatten"].tolist() == [0, 0, 0, 0, 0]


# -- accel report -------------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_cli_writes_the_report_and_prints_its_path(sweep, tmp_path, capsys, suffix):
    df, _ = sweep
    results = tmp_path / f"sweep{suffix}"
    df.to_parquet(results) if suffix == ".parquet" else df.to_csv(results, index=False)
    assert main(["report", str(results), "--out", str(tmp_path / "out"), "--drill-down", "0"]) == 0
    out = capsys.readouterr().out
    assert out == f"{tmp_path / 'out' / 'index.html'}\n"
    assert "<td>16 ok, 2 invalid, 0 error</td>" in (tmp_path / "out" / "index.html").read_text()


def cli_error(capsys, *argv: str) -> str:
    assert main(["report", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    return captured.err.rstrip("\n")


def test_cli_errors_name_the_file_or_column(sweep, tmp_path, capsys):
    df, _ = sweep
    out = str(tmp_path / "out")
    missing = tmp_path / "missing.parquet"
    assert cli_error(capsys, str(missing), "--out", out) == f"accel: error: {missing}: no such file"
    other = tmp_path / "sweep.json"
    other.write_text("{}")
    assert cli_error(capsys, str(other), "--out", out) == \
        f"accel: error: {other}: results must be a .parquet or .csv file, not .json"
    garbled = tmp_path / "garbled.parquet"
    garbled.write_bytes(b"this is not parquet\n" * 10)
    assert re.fullmatch(rf"accel: error: {re.escape(str(garbled))}: cannot be read as Parquet: .+",
                        cli_error(capsys, str(garbled), "--out", out))
    empty_file = tmp_path / "empty.csv"
    empty_file.write_text("")
    assert cli_error(capsys, str(empty_file), "--out", out) == \
        f"accel: error: {empty_file}: cannot be read as CSV: No columns to parse from file"
    good = tmp_path / "sweep.csv"
    df.to_csv(good, index=False)
    message = cli_error(capsys, str(good), "--out", out, "--objectives", "latency_s,power_w")
    assert message.startswith(f"accel: error: {good}: has no column 'power_w' to use as an objective; numeric "
                              "columns are: array.rows, array.cols, total_cycles, latency_s, ")
    assert cli_error(capsys, str(good), "--out", out, "--objectives", "latency_s") == \
        f"accel: error: {good}: objectives must be two or three columns, not 1 (latency_s)"
    header_only = tmp_path / "header.csv"
    df.iloc[:0].to_csv(header_only, index=False)
    assert cli_error(capsys, str(header_only), "--out", out) == f"accel: error: {header_only}: holds no rows"
    invalid = tmp_path / "invalid.csv"
    df[df["status"] == "invalid"].to_csv(invalid, index=False)
    assert cli_error(capsys, str(invalid), "--out", out) == \
        f"accel: error: {invalid}: has no ok row with finite latency_s and energy_j (2 invalid); nothing to report"
    not_a_sweep = tmp_path / "plain.csv"
    not_a_sweep.write_text("a,b\n1,2\n")
    assert cli_error(capsys, str(not_a_sweep), "--out", out) == \
        f"accel: error: {not_a_sweep}: is not a sweep result: no column 'status'"
    assert not (tmp_path / "out").exists()


def test_report_drills_into_a_sweep_whose_base_was_a_toml_file(tmp_path, shared_data):
    from sim.sweep import Space, run_sweep, write_results

    design = tmp_path / "mine.toml"
    design.write_text(config.dumps(config.load("fpga-small")).replace('name = "fpga-small"', 'name = "mine"'))
    frame = run_sweep(Space(base=str(design), params={"array.size": [2, 4]}),
                  [str(shared_data / "scalesim" / "alexnet.csv")], max_workers=1)
    results = tmp_path / "r.csv"
    write_results(frame, results)
    out = tmp_path / "report"
    assert main(["report", str(results), "--out", str(out), "--base", str(design), "--drill-down", "1"]) == 0
    page = (out / "index.html").read_text()
    assert "Could not map and simulate" not in page and "matches the sweep" in page


def test_a_drill_down_on_a_design_the_sweep_did_not_run_is_refused_and_names_base(tmp_path, shared_data, capsys):
    """A TOML design that kept its preset's name: without --base the preset would be re-run in its place."""
    from sim.sweep import Space, run_sweep, write_results

    design = tmp_path / "slow_dram.toml"
    design.write_text(config.dumps(config.load("fpga-small")).replace("bandwidth_bytes_per_cycle = 4.0",
                                                                      "bandwidth_bytes_per_cycle = 1.0"))
    assert config.load(design).name == "fpga-small" and config.load(design) != config.load("fpga-small")
    frame = run_sweep(Space(base=str(design), params={"array.size": [2, 4]}),
                      [str(shared_data / "scalesim" / "alexnet.csv")], max_workers=1)
    results = tmp_path / "r.csv"
    write_results(frame, results)
    out = tmp_path / "report"
    assert main(["report", str(results), "--out", str(out), "--drill-down", "1"]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the sweep did not run on the preset 'fpga-small'" in err and "--base" in err
    page = (out / "index.html").read_text()
    assert "Could not map and simulate this point again" in page and "differs from the sweep" not in page
    assert main(["report", str(results), "--out", str(out), "--drill-down", "1", "--base", "gemmini"]) == 0
    assert "the sweep did not run on gemmini" in capsys.readouterr().err
    assert main(["report", str(results), "--out", str(out), "--drill-down", "1", "--base", str(design)]) == 0
    assert capsys.readouterr().err == ""
    assert "matches the sweep" in (out / "index.html").read_text()
