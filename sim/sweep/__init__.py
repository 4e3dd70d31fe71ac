"""sim.sweep: design-space sweeps, mapping and simulating every point of a space on every workload.

The rooms, each with one job:

* :mod:`sim.sweep.space`: :class:`Space`, which parameters vary over which values, in what order
  (product, seeded random or Latin-hypercube sample);
* :mod:`sim.sweep.spec`: :func:`load_spec` reads a spec file into a :class:`SweepSpec`;
  :func:`default_spec_path` is the built-in one (``sim/sweeps/default.toml``);
* :mod:`sim.sweep.point`: one row, mapped, simulated and measured (:mod:`sim.metrics` defines the
  metric columns), and :func:`materialize`, the objects of a row to re-run it;
* :mod:`sim.sweep.executors`: where the rows run (this process, local workers that die with the
  sweep, any executor, Dask) and how a sweep stops on SIGINT/SIGTERM (:class:`SweepInterrupted`);
* :mod:`sim.sweep.results`: the result table (:func:`write_results`, :func:`read_results`) and the
  journal of finished rows beside it;
* :mod:`sim.sweep.runner`: :func:`run_sweep`, which puts them together, resumes, and never drops a
  finished row.

``run_sweep(space, workloads)`` (also ``sim.run_sweep``) returns a DataFrame with one row per
(point, workload). This package imports the mapper and the simulator; :mod:`sim.metrics` does not,
so :mod:`reports` can read metric directions without it.
"""

from sim.metrics import MAXIMIZED, METRICS
from sim.sweep.executors import SweepInterrupted
from sim.sweep.point import materialize
from sim.sweep.results import COLUMNS, SweepError, read_results, write_results
from sim.sweep.runner import run_sweep
from sim.sweep.space import Space
from sim.sweep.spec import SweepSpec, default_spec_path, load_spec

__all__ = ["COLUMNS", "MAXIMIZED", "METRICS", "Space", "SweepError", "SweepInterrupted", "SweepSpec",
           "default_spec_path", "load_spec", "materialize", "read_results", "run_sweep", "write_results"]
