"""Hypothesis strategies for random, syntactically valid `.arch` syntax trees.

Trees are built directly from the `syntax` dataclasses, so that properties such
as `parse(format_module(m)) == m` can be checked on shapes no example file has.
Every tree here can be written as `.arch` text: names are not keywords, numbers
inside expressions are non-negative (negative numbers only appear as literals,
in domain bounds, choice values and defaults), comments are single lines.
"""

from __future__ import annotations

import math
import re
import string
import textwrap
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from sparsemod_dsl.lang import ir
from sparsemod_dsl.lang import syntax as s

KEYWORDS = frozenset(
    "arch import train network block repeat choose optional residual time_distributed "
    "constraint int float choice log step ordered default true false as".split()
)
JOINABLE_NAMES = ("batchnorm", "relu", "relu6")
OPERATORS = ("+", "-", "*", "/", "//", "**")
COMPARISONS = ("<", "<=", ">", ">=", "==", "!=")

# Characters `str.splitlines` treats as line breaks (and other controls) are left
# out of free text: the parser counts lines with them, Lark does not.
_TEXT_CHARS = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp"))

_NAME_START = string.ascii_letters + "_"
names = st.builds(
    str.__add__, st.sampled_from(_NAME_START), st.text(_NAME_START + string.digits, max_size=7)
).filter(lambda name: name not in KEYWORDS)
comments = st.text(_TEXT_CHARS, max_size=12).map(lambda text: ("#" + text).rstrip())
comment_lists = st.lists(comments, max_size=2).map(tuple)
strings = st.text(st.one_of(_TEXT_CHARS, st.sampled_from('"\\\n\t')), max_size=8)
docstring_texts = st.lists(
    st.text(st.sampled_from("abc XYZ019.,:;'#\\{}()[]=-_*"), max_size=12).map(str.rstrip),
    max_size=3,
).map("\n".join)


# --- literals and expressions -------------------------------------------------------


def _int_texts(value: int) -> st.SearchStrategy[str]:
    return st.sampled_from(["", str(value), "00" + str(value)])


def _float_texts(value: float) -> st.SearchStrategy[str]:
    return st.sampled_from(["", repr(value), f"{value:.16e}"])


def integers(min_value: int = 0, max_value: int = 10**6) -> st.SearchStrategy[s.Number]:
    """Integer `Number`s, sometimes with a spelling in `text`."""
    return st.integers(min_value, max_value).flatmap(
        lambda v: _int_texts(abs(v)).map(
            lambda text: s.Number(v, text if v >= 0 or not text else "-" + text)
        )
    )


def floats(min_value: float = 0.0, max_value: float = 1e6) -> st.SearchStrategy[s.Number]:
    """Float `Number`s, sometimes with a spelling in `text`."""
    return st.floats(min_value, max_value, allow_nan=False, allow_infinity=False).flatmap(
        lambda v: _float_texts(abs(v)).map(
            lambda text: s.Number(v, "-" + text if text and math.copysign(1.0, v) < 0 else text)
        )
    )


def numbers(negative: bool = False) -> st.SearchStrategy[s.Number]:
    """Non-negative numbers, or numbers of either sign for literals."""
    if negative:
        return st.one_of(integers(-(10**6)), floats(-1e6))
    return st.one_of(integers(), floats())


def literals() -> st.SearchStrategy[s.Number | s.String | s.Bool]:
    """Constants as written in domains and defaults: numbers may be negative."""
    return st.one_of(
        numbers(negative=True), strings.map(s.String), st.booleans().map(s.Bool)
    )


def refs() -> st.SearchStrategy[s.Ref]:
    """`a`, `a[2].b`, ..."""
    segment = st.builds(s.Segment, names, st.none() | st.integers(0, 99))
    return st.lists(segment, min_size=1, max_size=3).map(lambda segs: s.Ref(tuple(segs)))


def expressions(max_leaves: int = 8) -> st.SearchStrategy[Any]:
    """Arithmetic and function calls over non-negative numbers, strings, booleans and
    references."""
    atoms = st.one_of(numbers(), strings.map(s.String), st.booleans().map(s.Bool), refs())
    return st.recursive(
        atoms,
        lambda inner: st.one_of(
            st.builds(s.BinOp, st.sampled_from(OPERATORS), inner, inner),
            st.builds(s.Neg, inner),
            st.builds(s.Func, names, st.lists(inner, min_size=1, max_size=3).map(tuple)),
        ),
        max_leaves=max_leaves,
    )


def morph_weights() -> st.SearchStrategy[s.Number | None]:
    """No morph weight, `frozen` (0) or `morph W`."""
    return st.none() | numbers()


def domains() -> st.SearchStrategy[s.IntRange | s.FloatRange | s.Choice]:
    """`int[..]`, `float[..]` and `choice[..]` with any valid modifiers."""
    ints = integers(-1000, 1000)
    default = st.none() | literals()
    weights = morph_weights()
    return st.one_of(
        st.builds(s.IntRange, ints, ints, st.none() | ints, st.booleans(), default, weights),
        st.builds(
            s.FloatRange, numbers(negative=True), numbers(negative=True), st.booleans(), default,
            weights,
        ),
        st.builds(
            s.Choice, st.lists(literals(), max_size=4).map(tuple), st.booleans(), default,
            weights,
        ),
    )


def pairs() -> st.SearchStrategy[s.Pair]:
    """`(a, b)` (or more items, which the checker refuses): each a domain or an expression."""
    item = st.one_of(domains(), expressions(max_leaves=3))
    return st.builds(s.Pair, st.lists(item, min_size=2, max_size=3).map(tuple))


def values() -> st.SearchStrategy[Any]:
    """What may follow `=`: a domain, an expression or a pair."""
    return st.one_of(domains(), expressions(max_leaves=4), pairs())


# --- statements -----------------------------------------------------------------------


def _stmt(cls: type, *args: Any, **kwargs: Any) -> st.SearchStrategy[Any]:
    """A statement node with random comments around it and maybe a blank line before."""
    return st.builds(
        cls,
        *args,
        comments=comment_lists,
        trailing=st.none() | comments,
        blank_before=st.booleans(),
        **kwargs,
    )


def calls(with_comments: bool = True) -> st.SearchStrategy[s.Call]:
    """Layers and block calls, often argument-less `relu`-like ones that join lines."""
    args = st.lists(st.builds(s.Arg, st.none() | names, values()), max_size=3).map(tuple)
    name = st.sampled_from(JOINABLE_NAMES) | names
    label = st.none() | names
    if with_comments:
        return _stmt(s.Call, name, st.just(()) | args, label)
    return st.builds(s.Call, name, st.just(()) | args, label, blank_before=st.booleans())


def _simple_statements() -> st.SearchStrategy[Any]:
    return st.one_of(
        calls(),
        _stmt(s.Param, names, values()),
        _stmt(s.Docstring, docstring_texts),
        constraints(),
    )


def constraints() -> st.SearchStrategy[s.Constraint]:
    """`constraint LEFT OP RIGHT`, maybe with the unit of its costs (`ram <= 20 KB`)."""
    unit = st.none() | st.sampled_from(sorted(ir.UNITS))
    return _stmt(s.Constraint, expressions(4), st.sampled_from(COMPARISONS), expressions(4),
                 unit=unit)


def _bodies(statements: st.SearchStrategy[Any]) -> st.SearchStrategy[s.Body]:
    return st.builds(
        s.Body,
        st.lists(statements, max_size=3).map(tuple),
        st.just(()) | comment_lists,
    )


#: `residual(...)` arguments: any values, named `shortcut` or positional.
_residual_args = st.lists(st.builds(s.Arg, st.none() | st.just("shortcut"), values()),
                          min_size=1, max_size=1).map(tuple)


def _compound_statements(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    bodies = _bodies(inner)
    plain = st.builds(s.Body, st.lists(calls(with_comments=False), min_size=1, max_size=4)
                      .map(tuple))
    alternatives = st.lists(_stmt(s.Alternative, names, bodies | plain), max_size=3)
    default = st.none() | literals()
    return st.one_of(
        _stmt(s.Repeat, names, values(), bodies, st.none() | names),
        _stmt(s.Choose, names, alternatives.map(tuple), default, st.just(()) | comment_lists),
        _stmt(s.Optional, names, bodies, default),
        _stmt(s.Residual, bodies, st.just(()) | _residual_args, st.none() | names),
        _stmt(s.TimeDistributed, bodies),
    )


def statements() -> st.SearchStrategy[Any]:
    """Any statement of a body, nesting compound statements a few levels deep."""
    return st.recursive(_simple_statements(), _compound_statements, max_leaves=8)


def bodies() -> st.SearchStrategy[s.Body]:
    """A braced body of statements with maybe some end comments."""
    return _bodies(statements())


# --- file level -------------------------------------------------------------------------


def _arch_params() -> st.SearchStrategy[s.ArchParam]:
    """Header parameters; shape sizes may be names, values numbers (`classes = 10`), names
    (`loss = mse`) or domains (`res`)."""
    shape = st.lists(st.integers(1, 256) | names, min_size=1, max_size=3).map(tuple)
    kinded = st.tuples(names, st.none() | shape)
    value = st.none() | st.integers(0, 1000) | names | domains()
    return st.builds(
        lambda name, kind, value: s.ArchParam(
            name, None if kind is None else kind[0], None if kind is None else kind[1],
            value if isinstance(value, (int, str)) else None,
            None if value is None or isinstance(value, (int, str)) else value,
        ),
        names,
        st.none() | kinded,
        value,
    )


def items() -> st.SearchStrategy[Any]:
    """A file-level item: doc string, header, import, section, block or constraint."""
    formals = st.lists(st.builds(s.Formal, names, st.none() | values()), max_size=3)
    return st.one_of(
        _stmt(s.Docstring, docstring_texts),
        _stmt(s.ArchHeader, names, st.lists(_arch_params(), max_size=3).map(tuple)),
        _stmt(s.Import, names, st.just(False)),
        _stmt(s.Import, strings, st.just(True)),
        _stmt(s.TrainSection, bodies()),
        _stmt(s.NetworkSection, bodies()),
        _stmt(s.BlockDef, names, formals.map(tuple), bodies(), morph_weights()),
        constraints(),
    )


def modules() -> st.SearchStrategy[s.Module]:
    """A whole `.arch` file as a syntax tree."""
    return st.builds(
        s.Module,
        st.lists(items(), max_size=5).map(tuple),
        st.just(()) | comment_lists,
    )


# --- mutated sources ------------------------------------------------------------------------

#: Crude tokens of `.arch` text: doc strings, strings, comments and numbers stay whole.
TOKEN = re.compile(
    r'"""[\s\S]*?"""|"(?:[^"\\\n]|\\.)*"|#[^\n]*|[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?'
    r"|\w+|\.\.|//|<=|>=|==|!=|\S|\n"
)

#: Valid sources that `mutated_sources` starts from.
SAMPLE_SOURCES = (
    (Path(__file__).parent / "golden" / "fmt" / "cnn.arch").read_text(),
    textwrap.dedent('''\
        """Keyword spotting."""
        arch kws(input: audio(1, 49, 10), classes = 12)
        import "lib/blocks.arch"
        block b(f = int[1..64] step 4 log, k = choice[1, -2] ordered default 1) {
            """doc"""
            head: conv2d(f, k) relu  # c
            choose c default "a" { a: relu
                b: { x = -f * (2 + k) // 3 } }
            optional o default true { residual { time_distributed { linear(32) } } }
            constraint f != k
            # end
        }
        train { lr = float[1e-4..1e-1] log default 1e-3 }
        network { repeat r = 2 { b(f = 8) } linear(classes) }
    '''),
)


def tokens(text: str) -> list[str]:
    """Crude tokens, each with the blanks before it, so that joining them gives `text`."""
    pieces, end = [], 0
    for match in TOKEN.finditer(text):
        pieces.append(text[end : match.end()])
        end = match.end()
    pieces.append(text[end:])
    return pieces


@st.composite
def mutated_sources(draw: st.DrawFn, sources: tuple[str, ...] = SAMPLE_SOURCES) -> str:
    """A source with a few tokens deleted, cut, duplicated, swapped or inserted (tokens of
    the same sources), spacing otherwise kept: mostly invalid."""
    text = draw(st.sampled_from(sources))
    pieces = tokens(text)
    for _ in range(draw(st.integers(1, 4))):
        if not pieces:  # a short text (a JSON point, say) can be cut away entirely
            break
        i = draw(st.integers(0, len(pieces) - 1))
        edit = draw(st.sampled_from(["delete", "cut", "duplicate", "swap", "insert"]))
        if edit == "delete":
            del pieces[i]
        elif edit == "cut":
            del pieces[i : i + draw(st.integers(2, 6))]
        elif edit == "duplicate":
            pieces.insert(i, pieces[i])
        elif edit == "swap":
            j = draw(st.integers(0, len(pieces) - 1))
            pieces[i], pieces[j] = pieces[j], pieces[i]
        else:
            vocabulary = sorted(set(TOKEN.findall("\n".join(sources))))
            pieces.insert(i, " " + draw(st.sampled_from(vocabulary)))
    return "".join(pieces)
