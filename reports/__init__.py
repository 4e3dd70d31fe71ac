"""reports: tables, plots and the HTML report, built from result objects only."""

from reports.run import plot_layer_cycles, plot_power, write_run_report

__all__ = ["plot_layer_cycles", "plot_power", "write_run_report"]
