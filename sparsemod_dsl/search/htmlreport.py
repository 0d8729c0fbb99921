"""`report.html`: the report of a search as one self-contained web page.

Plain SVG charts (`svgplot`) with a few lines of inline script and style: nothing is
fetched (the page's Content-Security-Policy forbids it), so it opens offline, from an
e-mail or an archive. Hovering a point shows the trial's id, stage, parameters and
costs, and marks the same trial in every chart. The charts: the validation error
against each cost with the target's budget lines and the Pareto front outlined and
labelled; the hypervolume against trials and against search time; the front's test
against its validation error.
"""

from __future__ import annotations

from html import escape

from .figdata import Figures, front_rows
from .svgplot import Chart, Mark

#: Colour of each stage's points; other stages are grey.
STAGE_COLOURS = {"sobol": "#4c72b0", "bo": "#dd8452", "morph": "#55a868"}
OTHER_COLOUR = "#8c8c8c"

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:20px;margin:0 0 4px}p.sub{margin:0 0 16px;color:#555}
.charts{display:flex;flex-wrap:wrap;gap:12px}
svg{background:#fff;border:1px solid #ddd}
.title{font-weight:600;text-anchor:middle;font-size:13px}
.frame{fill:none;stroke:#999}.grid{stroke:#eee}
.tick{font-size:10px;text-anchor:middle;fill:#555}.tick.y{text-anchor:end}
.label{font-size:12px;text-anchor:middle}
.limit{stroke:#c0392b;stroke-dasharray:6 3;stroke-width:1.4}
.limit-text{font-size:10px;fill:#c0392b;text-anchor:end}
.diag{stroke:#999;stroke-dasharray:3 3}
.pt{stroke:#fff;stroke-width:.8;opacity:.85}
.pt.front{stroke:#000;stroke-width:1.6;opacity:1}
.pt.hl{stroke:#e6007e;stroke-width:3;opacity:1}
.id{font-size:10px;fill:#000}
.legend span{display:inline-block;margin-right:14px}
.legend i{display:inline-block;width:10px;height:10px;border-radius:5px;margin-right:4px}
table{border-collapse:collapse;margin-top:16px}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
tr.hl td{background:#fde}
#tip{position:absolute;display:none;white-space:pre;background:#fffff0;border:1px solid #888;
padding:4px 6px;font-size:12px;pointer-events:none;max-width:420px;overflow:hidden}
"""

#: Hover: the tip follows the pointer, and the trial's marks and row are highlighted.
_SCRIPT = """
(function () {
  var tip = document.getElementById("tip");
  function mark(key, on) {
    document.querySelectorAll("." + key).forEach(function (e) {
      e.classList.toggle("hl", on);
    });
  }
  document.querySelectorAll("[data-tip]").forEach(function (e) {
    var key = Array.prototype.find.call(e.classList, function (c) { return /^t\\d+$/.test(c); });
    e.addEventListener("mousemove", function (event) {
      tip.textContent = e.getAttribute("data-tip");
      tip.style.display = "block";
      tip.style.left = (event.pageX + 14) + "px";
      tip.style.top = (event.pageY + 14) + "px";
    });
    e.addEventListener("mouseenter", function () { if (key) { mark(key, true); } });
    e.addEventListener("mouseleave", function () {
      tip.style.display = "none";
      if (key) { mark(key, false); }
    });
  });
})();
"""


def colour(stage: str) -> str:
    """The colour of a stage's points, the same in the page and the PNGs."""
    return STAGE_COLOURS.get(stage, OTHER_COLOUR)


def charts(figs: Figures) -> list[Chart]:
    """The page's charts, in order."""
    found = []
    for key, label in figs.costs():
        limit = figs.budgets.get(key)
        chart = Chart(f"{figs.error_label} against {label}", label, figs.error_label,
                      limits=[(limit, f"budget {limit:.1f} KB")] if limit is not None else [])
        chart.marks = [Mark(p.costs[key], p.error, colour(p.stage), p.tip, p.id, p.front,
                            str(p.id) if p.front else "")
                       for p in figs.points if key in p.costs]
        found.append(chart)
    if figs.hypervolume:
        by_trial = [(float(i), hv) for i, (_, _, hv) in enumerate(figs.hypervolume, 1)]
        by_time = [(minutes, hv) for _, minutes, hv in figs.hypervolume]
        for xlabel, line in (("trials trained", by_trial), ("search time (min)", by_time)):
            found.append(Chart(f"hypervolume against {xlabel.split(' (')[0]}", xlabel,
                               "hypervolume (% of reference box)",
                               lines=[(_steps(line), "#333", False)]))
    front = [p for p in figs.points if p.front and p.test is not None]
    if front:
        found.append(Chart(f"Pareto front: {figs.test_label} against {figs.error_label}",
                           figs.error_label, figs.test_label, diagonal=True,
                           marks=[Mark(p.error, p.test or 0.0, colour(p.stage), p.tip, p.id,
                                       True, str(p.id)) for p in front]))
    return found


def _steps(line: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """A step line through the points (a value holds until the next one)."""
    steps = line[:1]
    for x, y in line[1:]:
        steps += [(x, steps[-1][1]), (x, y)]
    return steps


def page(figs: Figures, title: str, summary: list[str], measure: str) -> str:
    """The whole page: heading, summary lines, legend, charts and the front's table."""
    stages = sorted({p.stage for p in figs.points}, key=lambda s: (s not in STAGE_COLOURS, s))
    legend = "".join(f'<span><i style="background:{colour(s)}"></i>{escape(s)}</span>'
                     for s in stages) + "<span>outlined and labelled: Pareto front</span>"
    heads = ["trial", "stage", figs.error_label, figs.test_label,
             *(label for _, label in figs.costs())]
    rows = "".join(f'<tr class="t{row[0]}">' + "".join(f"<td>{escape(c)}</td>" for c in row)
                   + "</tr>" for row in front_rows(figs, measure))
    table = ("<h2>Pareto front</h2><table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in heads)
             + f"</tr>{rows}</table>")
    body = "\n".join(chart.svg() for chart in charts(figs))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<link rel="icon" href="data:,"><title>{escape(title)}</title><style>{_STYLE}</style></head>
<body><h1>{escape(title)}</h1>
{"".join(f'<p class="sub">{escape(line)}</p>' for line in summary)}
<p class="legend">{legend}</p>
<div class="charts">
{body}
</div>
{table}
<div id="tip"></div>
<script>{_SCRIPT}</script>
</body></html>
"""
