"""Golden tests of error messages: what `sparsemodc check` prints for bad files.

Each `golden/errors/NAME.arch` has a `NAME.err` with the exact stderr of
`sparsemodc check tests/golden/errors/NAME.arch`, run from the repository
root. `pytest --update-golden` rewrites the `.err` files; review the diff.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sparsemod_dsl import cli

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path("tests") / "golden" / "errors"
CASES = sorted(p.stem for p in (ROOT / GOLDEN).glob("*.arch"))


@pytest.mark.parametrize("name", CASES)
def test_error_output(
    name: str,
    update_golden: bool,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(ROOT)
    code = cli.main(["check", str(GOLDEN / f"{name}.arch")])
    out, err = capsys.readouterr()
    assert (code, out) == (cli.EXIT_ERRORS, "")
    assert "Traceback" not in err
    expected = ROOT / GOLDEN / f"{name}.err"
    if update_golden:
        expected.write_text(err, encoding="utf-8")
        return
    assert expected.exists(), f"no {expected.name}: run pytest --update-golden"
    assert err == expected.read_text(encoding="utf-8")


def test_every_golden_output_has_its_source() -> None:
    sources = set(CASES)
    outputs = {p.stem for p in (ROOT / GOLDEN).glob("*.err")}
    assert outputs <= sources, f"stale .err files: {sorted(outputs - sources)}"
    assert len(sources) >= 12
