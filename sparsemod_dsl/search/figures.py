"""The report's PNGs, for papers: the same `Figures` as the HTML page, drawn by matplotlib.

- `pareto.png`: the validation error against each cost, one panel per cost, points
  coloured by stage, the Pareto front outlined and labelled with trial ids, the
  target's budgets as dashed red lines;
- `hypervolume.png`: the hypervolume against trials trained and against search time;
- `test_vs_validation.png`: the front's test error against its validation error
  (written when the journal has test errors).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .figdata import Figures
from .htmlreport import STAGE_COLOURS, charts, colour
from .svgplot import Chart


def plot(figs: Figures, folder: Path) -> list[Path]:
    """Write the PNGs into `folder`; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn = charts(figs)  # the page's charts: the same data, titles and labels
    scatter = [c for c in drawn if c.marks and not c.diagonal]
    progress = [c for c in drawn if c.lines]
    compared = [c for c in drawn if c.diagonal]
    written = []
    for name, group in (("pareto.png", scatter), ("hypervolume.png", progress),
                        ("test_vs_validation.png", compared)):
        if not group:
            continue
        fig, axes = plt.subplots(1, len(group), figsize=(4.8 * len(group), 4.2), squeeze=False)
        for ax, chart in zip(axes[0], group):
            _draw(ax, chart)
        if group is scatter:
            stages = sorted({p.stage for p in figs.points},
                            key=lambda s: (s not in STAGE_COLOURS, s))
            handles = [ax.scatter([], [], c=colour(s), s=16, label=s) for s in stages]
            handles.append(ax.scatter([], [], facecolors="none", edgecolors="black", s=40,
                                      label="Pareto front (trial id)"))
            fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
            fig.tight_layout(rect=(0, 0.07, 1, 1))
        else:
            fig.tight_layout()
        written.append(folder / name)
        fig.savefig(written[-1], dpi=150)
        plt.close(fig)
    return written


def _draw(ax: Any, chart: Chart) -> None:
    """One chart of `htmlreport.charts` on matplotlib axes."""
    for strong in (False, True):
        marks = [m for m in chart.marks if m.strong == strong]
        ax.scatter([m.x for m in marks], [m.y for m in marks], c=[m.colour for m in marks],
                   s=40 if strong else 14, edgecolors="black" if strong else "none",
                   linewidths=1.0, zorder=3 if strong else 2)
        for m in marks:
            if m.label:
                ax.annotate(m.label, (m.x, m.y), textcoords="offset points", xytext=(4, 4),
                            fontsize=7)
    for x, text in chart.limits:
        ax.axvline(x, color="#c0392b", linestyle="--", linewidth=1.2)
        ax.annotate(text, (x, 1), xycoords=("data", "axes fraction"), xytext=(-3, -10),
                    textcoords="offset points", ha="right", fontsize=7, color="#c0392b")
    for points, line_colour, dashed in chart.lines:
        ax.plot([x for x, _ in points], [y for _, y in points], color=line_colour,
                linestyle="--" if dashed else "-")
    if chart.diagonal:
        values = [v for m in chart.marks for v in (m.x, m.y)]
        low, high = min(values), max(values)
        ax.plot([low, high], [low, high], color="0.6", linestyle=":", label="test = validation")
        ax.legend(fontsize=7)
    ax.set_title(chart.title, fontsize=9)
    ax.set_xlabel(chart.xlabel)
    ax.set_ylabel(chart.ylabel)
    ax.grid(True, color="0.92")
