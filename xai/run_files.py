"""The files of a run folder that belong to the whole run, named once (paths relative to the folder).
The per-sample files are declared by the run's layout (xai.pipeline.layout), which re-exports these."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RUN_FILES", "RunFiles"]


@dataclass(frozen=True)
class RunFiles:
    summary_csv: str = "summary.csv"  # per sample and class: the prediction's and each map's numbers
    summary_json: str = "summary.json"
    manifest: str = "manifest.json"  # the run as it ran
    explorer: str = "index.html"  # the interactive explorer (xai.explorer); its data under explorer/
    gallery: str = "gallery.html"  # the static gallery of the figures (xai.gallery)
    metrics_csv: str = "metrics.csv"  # --evaluate: every metric, long format
    metrics_json: str = "metrics.json"
    report_md: str = "report.md"
    report_html: str = "report.html"
    report_plots: str = "report"  # the report's curves and plots
    context_plot: str = "report/context_dependence.png"  # the context-dependence matrix (xai.evaluation.context)


RUN_FILES = RunFiles()
