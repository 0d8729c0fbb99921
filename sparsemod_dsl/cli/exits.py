"""What every `sparsemodc` command ends with: its exit code, and errors shown on stderr.

The exit codes are the command's contract with scripts (see the package docstring);
`print_error` renders `.arch` errors with their quoted source lines, as `check`, `fmt`
and `main` report them.
"""

from __future__ import annotations

import sys

from ..errors import ArchError, UsageError, render
from ..lang.loader import read_source

EXIT_OK, EXIT_ERRORS, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 70


def print_error(error: ArchError, sources: dict[str, str] | None = None) -> None:
    """Render errors with the quoted source lines (read from disk unless given)."""
    sources = dict(sources or {})
    for diagnostic in error.diagnostics:
        name = diagnostic.span.file
        if name not in sources:
            try:
                sources[name] = read_source(name)
            except UsageError:
                pass
    print(render(error, sources), file=sys.stderr)
