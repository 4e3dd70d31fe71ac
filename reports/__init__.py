"""reports: tables, plots and the HTML report, built from result objects only."""

from reports.html import write_html_report
from reports.pareto import ReportError, best_points, pareto_front, sensitivity
from reports.run import plot_layer_cycles, plot_power, write_run_report

__all__ = ["ReportError", "best_points", "pareto_front", "plot_layer_cycles", "plot_power", "sensitivity",
           "write_html_report", "write_run_report"]
