"""Figures and written results from fisher_mi's tables.

matplotlib and seaborn are imported inside the plotting functions, never at ``import
fisher_mi``: a notebook keeps its own (inline) backend, and figures are drawn with the object
API (``matplotlib.figure.Figure``), which needs no backend at all.
"""

from fisher_mi.report.build import INCONCLUSIVE, REPORT, build_report, report_outputs
from fisher_mi.report.figures import plot_fisher_profile, plot_freeze_plan
from fisher_mi.report.profile import write_profile
from fisher_mi.report.runs import Runs, read_runs

__all__ = [
    "INCONCLUSIVE",
    "REPORT",
    "Runs",
    "build_report",
    "plot_fisher_profile",
    "plot_freeze_plan",
    "read_runs",
    "report_outputs",
    "write_profile",
]
