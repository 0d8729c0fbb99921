"""How long `sparsemodc check` takes on files with very many errors or very large parts.

The fuzz campaign of issue 14 found `check` times growing with the square of the
number of errors. Each case here generates one file, then times reading, lowering,
checking and rendering the errors, as `sparsemodc check` does (in process, without
the start-up):

- `docstrings`: N misplaced doc strings at the top level (N errors);
- `block_docstrings`: N misplaced doc strings in one block (N errors);
- `arguments`: one call with N positional arguments (N errors);
- `comments`: N residual bodies, each with a comment (no error);
- `undefined`: N parameters and N misspelt names (N errors, each with a suggestion
  to look for among the parameters);
- `valid_args`: N layers with a long argument expression each (no error).

Prints seconds per case and exits 1 when a case takes more than `--limit` seconds
(default 30). On the machine of issue 14 (2 shared cores), before and after:

| case | N | before | after |
|---|---|---|---|
| docstrings | 16,000 | 109 s | 0.9 s |
| block_docstrings | 3,200 (16,000) | 7.6 s (not run) | 0.1 s (0.7 s) |
| arguments | 20,000 (100,000) | 189 s (over 400 s in the issue) | 1.9 s (10 s) |
| comments | 1,000 (5,000) | 0.9 s (SEE) | 0.1 s (1.0 s) |
| undefined | 2,000 | 22 s | 3 s |

What is left grows linearly: it is Lark's parser, about 20,000 tokens a second.

    .venv/bin/python benchmarks/front_end_errors.py [--scale 1.0] [--limit 30]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from sparsemod_dsl.errors import ArchError, render
from sparsemod_dsl.lang.compiler import check_file

HEADER = "arch big(input: image(1, 8, 8), classes = 4)\n\n"
TAIL = "network {\n    global_avg_pool\n    linear(classes)\n}\n"


def docstrings(n: int) -> str:
    return HEADER + '"""misplaced"""\n\n' * n + TAIL


def block_docstrings(n: int) -> str:
    body = '    """misplaced"""\n' * n
    return HEADER + f'block b() {{\n    relu\n{body}}}\n\n' + TAIL


def arguments(n: int) -> str:
    args = ", ".join("1" for _ in range(n))
    return HEADER + f"network {{\n    relu({args})\n    global_avg_pool\n    linear(classes)\n}}\n"


def comments(n: int) -> str:
    body = "    residual {  # a comment\n        relu\n    }\n" * n
    return HEADER + "network {\n" + body + "    global_avg_pool\n    linear(classes)\n}\n"


def undefined(n: int) -> str:
    defined = "".join(f"    p{i}x = int[1..2]\n    conv2d(p{i}x, 3)\n" for i in range(n))
    misspelt = "".join(f"    conv2d(q{i}y, 3)\n" for i in range(n))
    return HEADER + "network {\n" + defined + misspelt + TAIL.split("\n", 1)[1]


def valid_args(n: int) -> str:
    layer = "    dropout(p = min(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8))\n"
    return HEADER + "network {\n" + layer * n + "    global_avg_pool\n    linear(classes)\n}\n"


CASES: dict[str, tuple[Callable[[int], str], int]] = {
    "docstrings": (docstrings, 16_000),
    "block_docstrings": (block_docstrings, 16_000),
    "arguments": (arguments, 100_000),
    "comments": (comments, 5_000),
    "undefined": (undefined, 2_000),
    "valid_args": (valid_args, 5_000),
}


def time_case(text: str, folder: Path) -> tuple[float, int]:
    """Seconds to check and render one file, and the number of errors."""
    path = folder / "case.arch"
    path.write_text(text)
    start = time.perf_counter()
    errors = 0
    try:
        check_file(path)
    except ArchError as error:
        errors = len(error.diagnostics)
        render(error, {str(path): text})
    return time.perf_counter() - start, errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every size")
    parser.add_argument("--limit", type=float, default=30.0, help="most seconds per case")
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    args = parser.parse_args()
    slow = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.cases:
            make, size = CASES[name]
            n = max(1, int(size * args.scale))
            seconds, errors = time_case(make(n), Path(folder))
            print(f"{name:17} n={n:7}  errors={errors:7}  {seconds:8.2f} s", flush=True)
            if seconds > args.limit:
                slow.append(name)
    if slow:
        print(f"slower than {args.limit:g} s: {', '.join(slow)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
