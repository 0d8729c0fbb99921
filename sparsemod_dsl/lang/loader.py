"""Read `.arch` files and resolve their imports into libraries of blocks.

`import blocks` looks for `blocks.arch` beside the importing file, then in the
standard library shipped with the package; `import "dir/x.arch"` is a path
relative to the importing file. Each file is parsed once; cycles are errors.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ..errors import ArchError, Diagnostics, UsageError
from . import syntax as s
from .layers import LAYERS
from .parser import parse

#: Largest source file accepted, in bytes.
MAX_FILE_BYTES = 4 * 1024 * 1024
#: Longest chain of imports (a file importing a file importing ...).
MAX_IMPORT_DEPTH = 32


@dataclass
class Library:
    """One parsed file and the blocks it can call (its own and those it imports)."""

    module: s.Module
    path: str
    visible: dict[str, tuple[s.BlockDef, "Library"]] = field(default_factory=dict)


@dataclass
class Unit:
    """A file with every import resolved, and the text of every file read."""

    library: Library
    sources: dict[str, str]


def stdlib_dir() -> Path:
    """The folder of the installed standard library."""
    return Path(str(resources.files("sparsemod_dsl.stdlib")))


def read_source(path: str | Path) -> str:
    """Read a source file as UTF-8 text, with a clear error for anything else.

    At most `MAX_FILE_BYTES` are read, whatever the file: a device such as
    `/dev/urandom` or a pipe is refused once it gives more.
    """
    p = Path(path)
    try:
        if p.is_dir():
            raise UsageError(f"{path}: is a directory, not an .arch file")
        with p.open("rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise UsageError(f"{path}: cannot read: {error.strerror or error}") from None
    if len(data) > MAX_FILE_BYTES:
        raise UsageError(f"{path}: file is too large (more than {MAX_FILE_BYTES} bytes, 4 MiB)")
    if b"\0" in data:
        raise UsageError(f"{path}: not a text file (it contains NUL bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UsageError(f"{path}: not UTF-8 text (bad byte at offset {error.start})") from None


def load(path: str | Path) -> Unit:
    """Parse `path` and everything it imports.

    Raises:
        UsageError: the file cannot be read.
        ArchError: syntax errors, bad imports, cycles, clashing block names.
    """
    text = read_source(path)
    return load_text(text, str(path))


def load_text(text: str, file: str) -> Unit:
    """Like `load`, for source already in memory (imports resolve beside `file`)."""
    loader = _Loader()
    loader.sources[file] = text
    library = loader.library(file, text, (), None)
    loader.diags.raise_if_any()
    assert library is not None
    return Unit(library, loader.sources)


class _Loader:
    def __init__(self) -> None:
        self.done: dict[str, Library] = {}
        self.sources: dict[str, str] = {}
        self.diags = Diagnostics()

    def library(
        self, file: str, text: str, chain: tuple[str, ...], via: s.Import | None
    ) -> Library | None:
        key = _key(file)
        if key in chain:
            assert via is not None
            cycle = " -> ".join([*(Path(c).name for c in chain[chain.index(key):]), Path(key).name])
            self.diags.error(via.span, f"import cycle: {cycle}")
            return None
        if key in self.done:
            return self.done[key]
        try:
            module = parse(text, file)
        except ArchError as error:
            self.diags.extend(error)
            return None
        library = Library(module, file)
        for item in module.items:
            if isinstance(item, s.Import):
                self.add_import(library, item, (*chain, key))
        for item in module.items:
            if isinstance(item, s.BlockDef):
                self.add_block(library, item, library)
        self.done[key] = library
        return library

    def add_import(self, library: Library, item: s.Import, chain: tuple[str, ...]) -> None:
        if len(chain) > MAX_IMPORT_DEPTH:
            self.diags.error(
                item.span,
                f"imports are nested more than {MAX_IMPORT_DEPTH} files deep "
                f"(from {Path(chain[0]).name}); import the files you need from fewer levels",
            )
            return
        target = self.resolve(library.path, item)
        if target is None:
            return
        try:
            text = read_source(target)
        except UsageError as error:
            self.diags.error(item.span, str(error))
            return
        self.sources[str(target)] = text
        imported = self.library(str(target), text, chain, item)
        if imported is None:
            return
        for block in imported.module.items:
            if isinstance(block, s.BlockDef):
                self.add_block(library, block, imported, item)

    def resolve(self, importer: str, item: s.Import) -> Path | None:
        here = Path(importer).parent
        if item.is_path:
            candidates = [here / item.target]
        else:
            candidates = [here / f"{item.target}.arch", stdlib_dir() / f"{item.target}.arch"]
        shown = item.target if item.is_path else f"{item.target}.arch"
        if len(shown) > 60:
            shown = shown[:57] + "..."
        for candidate in candidates:
            try:
                if candidate.is_file():
                    return candidate
            except OSError as error:  # a name too long for the file system, say
                self.diags.error(item.span, f"cannot import '{shown}': {error.strerror or error}")
                return None
        where = "beside this file" if item.is_path else "beside this file or in the stdlib"
        hint = ""
        if not item.is_path and not self.diags.crowded:
            known = {p.stem for folder in (here, stdlib_dir()) for p in folder.glob("*.arch")}
            close = difflib.get_close_matches(item.target, sorted(known), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
        self.diags.error(item.span, f"cannot find '{shown}' {where}{hint}")
        return None

    def add_block(
        self, library: Library, block: s.BlockDef, owner: Library, via: s.Import | None = None
    ) -> None:
        span = via.span if via is not None else block.span
        if block.name in LAYERS:
            self.diags.error(span, f"block '{block.name}' has the name of a built-in layer")
            return
        previous = library.visible.get(block.name)
        if previous is not None and previous[0] is not block:
            other = previous[0]
            self.diags.error(
                span,
                f"block '{block.name}' is defined twice",
                (other.span, f"'{block.name}' is first defined here"),
            )
            return
        library.visible[block.name] = (block, owner)


def _key(file: str) -> str:
    path = Path(file)
    return str(path.resolve()) if path.exists() else file
