"""sparsemod-dsl: the .arch language for neural-architecture search on microcontrollers.

The public API is small:

- `compile_file(path, input_shape=None, classes=None) -> Space` and `compile_text`:
  compile a `.arch` program; `Space` offers `.search_space` (Ax), `.parameters`,
  `.validate(point)`, `.build(point)`, `.sample(n, seed)`, `.builder_source()`.
- `parse` (text -> syntax tree) and `format_source` (canonical text).
- the errors: `SparsemodError`, `ArchError` (with positions), `UsageError`.
"""

__version__ = "0.1.0"

from .errors import ArchError, SparsemodError, UsageError  # noqa: E402
from .lang.fmt import format_source  # noqa: E402
from .lang.parser import parse  # noqa: E402


def __getattr__(name: str) -> object:
    # The backends pull in torch and Ax (seconds to import): load them on first use, so
    # that `sparsemodc check` and `fmt` stay fast.
    if name in ("compile_file", "compile_text", "Space"):
        from . import space

        return getattr(space, name)
    raise AttributeError(name)


__all__ = [
    "ArchError",
    "Space",
    "SparsemodError",
    "UsageError",
    "compile_file",
    "compile_text",
    "format_source",
    "parse",
]
