"""`sparsemodc report`'s page and PNGs: self-contained, in the search's units, and working
in a real browser.

The browser tests run Debian's `chromium` headless (`--screenshot`, `--dump-dom`,
`--enable-logging=stderr`) on the page with every host name unresolvable and a dead
proxy, so that anything the page tried to fetch would fail and log an error. Without a
chromium on the PATH they are skipped with the reason (CI's `.ci/run` installs it when
it can: `apt-get install chromium`).
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ElementTree
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from small_search import ARCH

from sparsemod_dsl.nets.targets import load_target
from sparsemod_dsl.search.figdata import budgets
from sparsemod_dsl.search.journal import RUN_EVENT, RUN_START_EVENT, SEARCH_EVENT
from sparsemod_dsl.search.pricing import budget_bytes
from sparsemod_dsl.search.report import report

NOON = datetime(2026, 11, 29, 12, tzinfo=timezone.utc)
PARAMS = {"train.batch_size": 16, "train.learning_rate": 0.01, "conv2d.filters": 4,
          "pool": True}


def results_dir(folder: Path, trials: list[dict[str, Any]], measure: str = "cross_entropy",
                budgets: dict[str, int] | None = None) -> Path:
    """A results directory of `trials` (finished events' fields, with a `stage`), in two
    runs: the first killed after half of them, the second ended normally."""
    (folder / "small.arch").write_text(ARCH)
    (folder / "setup.json").write_text(json.dumps({
        "arch": str(folder / "small.arch"), "input_shape": [1, 8, 8], "classes": 2,
        "target": None, "quantization": "none", "objectives": ["error", "flash", "ram"],
        "measure": measure, "budgets": budgets}))
    events: list[dict[str, Any]] = [
        {"event": SEARCH_EVENT, "experiment_hash": "e", "arch_hash": "a", "settings": {}},
        {"event": RUN_START_EVENT}]
    second = 0
    for number, trial in enumerate(trials):
        if number == len(trials) // 2 and number:  # killed here; resumed an hour later
            second += 3600
            events.append({"event": RUN_START_EVENT, "second": second})
        stage = trial.pop("stage", "sobol")
        events += [{"event": "started", "trial": number, "stage": stage, "params": PARAMS,
                    "second": second},
                   {"event": "finished", "trial": number, "second": second + 20, **trial}]
        second += 21
    events.append({"event": RUN_EVENT, "seconds": 30.0})
    lines = [json.dumps({**{k: v for k, v in e.items() if k != "second"},
                         "time": (NOON + timedelta(seconds=e.get("second", 0))).isoformat()})
             for e in events]
    (folder / "journal.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def trial(rng: random.Random, stage: str = "sobol", status: str = "completed",
          **fields: Any) -> dict[str, Any]:
    """The finished event of a trial with random measures."""
    if status != "completed":
        return {"stage": stage, "status": status, "reason": "does not fit"}
    return {"stage": stage, "status": status, "error": rng.uniform(0.02, 0.5),
            "test_error": rng.uniform(0.02, 0.5), "flash_bytes": rng.randrange(2000, 30000),
            "ram_bytes": rng.randrange(500, 9000), "macs": rng.randrange(1000, 99999),
            "latency_ms": rng.uniform(0.1, 5), **fields}


def search(folder: Path, seed: int = 0) -> Path:
    rng = random.Random(seed)
    stages = ["sobol"] * 6 + ["bo"] * 6 + ["morph"] * 3
    trials = [trial(rng, stage) for stage in stages] + [trial(rng, "bo", "infeasible")]
    return results_dir(folder, trials, budgets={"flash_bytes": 20480, "ram_bytes": 8192})


# --- the page and the PNGs ------------------------------------------------------------------


def test_report_writes_a_page_and_the_pngs(tmp_path: Path) -> None:
    table, files = report(search(tmp_path))
    assert [f.name for f in files] == ["report.html", "pareto.png", "hypervolume.png",
                                       "test_vs_validation.png"]
    assert "search time: 3.3 min over 2 runs" in table  # 167 s till the kill, a 30 s run
    page = (tmp_path / "report.html").read_text()
    assert "trial 3 [sobol]" in page and "conv2d.filters = 4" in page  # hover text
    assert "budget 20.0 KB" in page and "budget 8.0 KB" in page
    for words in ("validation error % against flash KB", "hypervolume against trials",
                  "hypervolume against search time",
                  "Pareto front: test error % against validation error %"):
        assert words in page
    for png in files[1:]:
        assert blank_share(png) < 0.97, png
    assert has_colour(files[1], "#dd8452") and has_colour(files[1], "#c0392b")  # bo, budgets


def test_the_page_fetches_nothing(tmp_path: Path) -> None:
    report(search(tmp_path))
    page = (tmp_path / "report.html").read_text()
    links = re.findall(r"""(?:src|href)\s*=\s*["']?([^"' >]*)""", page)
    assert links and all(link.startswith("data:") for link in links), links
    assert re.findall(r"https?://[^\s\"'<>]*", page) == ["http://www.w3.org/2000/svg"] * (
        page.count("<svg"))  # the SVG namespace names, never fetched
    assert "default-src 'none'" in page  # and the browser is told to fetch nothing


@pytest.mark.parametrize(("measure", "label"), [("mse", "validation MSE"),
                                                  ("auc", "validation AUC")])
def test_the_page_speaks_the_units_of_the_measure(tmp_path: Path, measure: str,
                                                  label: str) -> None:
    rng = random.Random(1)
    report(results_dir(tmp_path, [trial(rng) for _ in range(5)], measure))
    page = (tmp_path / "report.html").read_text()
    assert f"{label} against flash KB" in page and "error %" not in page


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["sobol", "bo", "morph", "retrain"]),
                          st.sampled_from(["completed", "completed", "failed"]),
                          st.sampled_from([0.0, 0.1, 0.5, 1.0]),
                          st.sampled_from([None, 0.2]),
                          st.integers(1, 40000)), min_size=1, max_size=8),
       st.booleans())
def test_every_chart_is_well_formed_svg(tmp_path: Path,
                                        rows: list[tuple[str, str, float, float | None, int]],
                                        budgets: bool) -> None:
    """Ties, a single trial, errors of 0 and 1, no test errors, all failed: every chart
    is valid XML with finite coordinates."""
    folder = Path(tempfile.mkdtemp(dir=tmp_path))  # one per example
    trials = [{"stage": stage, "status": status, "error": error, "test_error": test,
               "flash_bytes": size, "ram_bytes": size // 2}
              if status == "completed" else {"stage": stage, "status": status, "reason": "x"}
              for stage, status, error, test, size in rows]
    report(results_dir(folder, trials, budgets={"flash_bytes": 9000} if budgets else None))
    page = (folder / "report.html").read_text()
    for svg in re.findall(r"<svg.*?</svg>", page, re.S):
        ElementTree.fromstring(svg)
        assert not re.search(r"\b(nan|inf)\b", svg), svg[:200]


def test_budget_lines_come_from_setup_json_else_from_the_target() -> None:
    """`setup.json`'s `budgets` are the experiment's own limits (the 16 KB of the digits
    example); older files without them fall back to the target's."""
    target = load_target("stm32f446")
    saved = budget_bytes(dataclasses.replace(target, flash_bytes=16384, reserved_flash_bytes=0))
    assert saved is not None and saved["flash_bytes"] == 16384
    assert budgets({"target": "stm32f446", "budgets": saved})["flash"] == 16.0
    assert budgets({"target": "stm32f446"}) == {
        "flash": target.flash_budget_bytes / 1024, "ram": target.ram_budget_bytes / 1024}
    assert budgets({"target": None}) == {} and budget_bytes(None) is None


def blank_share(png: Path) -> float:
    """The share of an image's pixels that are its most common colour (1.0: blank)."""
    import matplotlib.image

    pixels = matplotlib.image.imread(str(png))[..., :3].reshape(-1, 3)
    _, counts = np.unique((pixels * 255).astype(np.uint8), axis=0, return_counts=True)
    return float(counts.max() / len(pixels))


def has_colour(png: Path, colour: str) -> bool:
    """Whether some pixels of the image are this colour (to within antialiasing)."""
    import matplotlib.colors
    import matplotlib.image

    pixels = matplotlib.image.imread(str(png))[..., :3].reshape(-1, 3)
    distance = np.abs(pixels - np.array(matplotlib.colors.to_rgb(colour))).max(axis=1)
    return int((distance < 0.03).sum()) >= 20


# --- in a real browser ----------------------------------------------------------------------


def chromium() -> str:
    """The path of a chromium to run, or skip the test saying why there is none."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no chromium on the PATH: the report page was not opened in a browser "
                "(`apt-get install chromium` on Debian; .ci/run does that when it can)")


def browse(page: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """Headless chromium on the page, offline: every host unresolvable, a dead proxy."""
    return subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-extensions", "--disable-background-networking", "--disable-sync",
         f"--user-data-dir={page.parent / 'chromium-profile'}", "--enable-logging=stderr",
         "--v=0", "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
         "--window-size=1400,1000", *flags, page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False)


def console(run: subprocess.CompletedProcess[str]) -> list[str]:
    """The page's console messages (errors, refused loads, uncaught exceptions)."""
    return [line for line in run.stderr.splitlines() if "CONSOLE" in line]


def test_the_page_opens_in_chromium_without_console_errors(tmp_path: Path) -> None:
    chromium()  # or skip, before any work
    (tmp_path / "results").mkdir()
    report(search(tmp_path / "results"))
    page = tmp_path / "results" / "report.html"
    shot = tmp_path / "shot.png"
    run = browse(page, f"--screenshot={shot}")
    assert run.returncode == 0, run.stderr[-2000:]
    assert console(run) == [], console(run)
    assert shot.exists() and blank_share(shot) < 0.98  # a blank page: 1.0; this one: ~0.93
    assert has_colour(shot, "#4c72b0")  # the sobol points were drawn
    broken = tmp_path / "broken.html"  # the check sees what it looks for
    broken.write_text(page.read_text().replace(
        "</body>", '<img src="https://example.com/x.png"><script>console.error("boom");'
        "</script></body>"))
    assert len(console(browse(broken, "--dump-dom"))) >= 2


def test_hovering_a_point_shows_its_trial_and_marks_it_everywhere(tmp_path: Path) -> None:
    """A script appended to the page moves the mouse onto the first point of trial 3 and
    writes what the page then shows into the DOM, which `--dump-dom` prints."""
    chromium()
    report(search(tmp_path))
    page = (tmp_path / "report.html").read_text()
    probe = """<script>
var e = document.querySelector("circle.t3");
e.dispatchEvent(new MouseEvent("mouseenter"));
e.dispatchEvent(new MouseEvent("mousemove", {clientX: 40, clientY: 40}));
var tip = document.getElementById("tip");
document.body.setAttribute("data-probe", [tip.style.display, tip.textContent.split("\\n")[0],
  document.querySelectorAll("circle.t3.hl").length, document.querySelectorAll("tr.t3.hl").length,
  document.querySelectorAll("circle.t3").length].join("|"));
</script></body>"""
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", probe))
    run = browse(probed, "--dump-dom")
    assert console(run) == [], console(run)
    shown = re.search(r'data-probe="([^"]*)"', run.stdout)
    assert shown is not None, run.stdout[-2000:]
    display, head, marked, row, marks = shown.group(1).split("|")
    assert (display, marked) == ("block", marks) and int(marks) >= 3
    assert head.startswith("trial 3 [sobol]")
    assert row == ("1" if "Pareto front" in head else "0")
