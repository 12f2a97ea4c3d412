"""Reports of sweeps and training runs: tables, figures and a self-contained HTML page.

The report reads results only (:class:`jaxinit.Result`s: a sweep's, theory's
prediction with the same dims and fields, a training run's with dims (init,
seed[, activation])); it never runs a network::

    from jaxinit import report
    print(report.layer_table(res, init="he_normal", activation="relu"))
    print(report.summary_table(res, fmt="text"))
    fig = report.variance_vs_depth(res, theory=theory)
    report.save(fig, "out/variance", formats=("png", "pdf"))
    report.report_sweep(res, "out/report", theory=theory)     # report.html and its files
    fig = report.layer_profile(model_res, layers="ResidualBlock")  # a ModelGrid sweep by path
"""

from jaxinit.report._json import write_json
from jaxinit.report._layers import layer_profile
from jaxinit.report.figures import (
    PALETTE,
    NotebookFigure,
    grad_variance_vs_depth,
    heatmap,
    histogram_grid,
    phase_diagram,
    save,
    trainability,
    variance_vs_depth,
)
from jaxinit.report.html import (
    ReportPaths,
    Section,
    provenance,
    report_sweep,
    report_train,
    write_report,
)
from jaxinit.report.scaling import loss_vs_learning_rate, size_vs_width
from jaxinit.report.tables import layer_table, render, summary_table, variance_ratio
from jaxinit.report.training import (
    accuracy,
    decision_boundary,
    decision_grid,
    layer_stats_over_training,
    loss_curves,
)

__all__ = [
    "PALETTE",
    "NotebookFigure",
    "ReportPaths",
    "Section",
    "accuracy",
    "decision_boundary",
    "decision_grid",
    "grad_variance_vs_depth",
    "heatmap",
    "histogram_grid",
    "layer_profile",
    "layer_stats_over_training",
    "layer_table",
    "loss_curves",
    "loss_vs_learning_rate",
    "phase_diagram",
    "provenance",
    "render",
    "report_sweep",
    "report_train",
    "save",
    "size_vs_width",
    "summary_table",
    "trainability",
    "variance_ratio",
    "variance_vs_depth",
    "write_json",
    "write_report",
]
