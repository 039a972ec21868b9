"""What a report is made of: sections, each a figure, a caption, the numbers behind it and what is missing.

Sections are plain values built by small functions (``repeatlab.report.sections``) and rendered by one
template (``repeatlab.report.html``), so adding a section (an audit, a new figure) is one function that
returns a ``Section``; nothing here knows HTML. All text is stored raw: escaping is the template's job.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from repeatlab.errors import RepeatlabError

Formatter = Callable[[Any], str]


@dataclass(frozen=True, kw_only=True)
class Figure:
    """One image, already encoded as a ``data:`` URI so the page needs no other file."""

    uri: str
    """``data:image/png;base64,...``."""
    alt: str
    """Text alternative: what the figure plots."""


@dataclass(frozen=True, kw_only=True)
class Table:
    """Numbers behind a figure, already formatted as strings."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def __post_init__(self) -> None:
        for i, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise RepeatlabError(f"Table {self.title!r}: row {i} has {len(row)} cells but there are {len(self.columns)} columns")

    @classmethod
    def from_frame(
        cls, title: str, frame: pd.DataFrame, formats: Mapping[str, Formatter] | None = None
    ) -> Table:
        """Format every cell of ``frame``: per-column formatters, else ``format_value``."""
        formats = dict(formats or {})
        rows = tuple(
            tuple(formats.get(str(col), format_value)(value) for col, value in zip(frame.columns, record))
            for record in frame.itertuples(index=False, name=None)
        )
        return cls(title=title, columns=tuple(str(c) for c in frame.columns), rows=rows)


@dataclass(frozen=True, kw_only=True)
class Section:
    """One titled part of the report."""

    key: str
    """Anchor id in the page (letters, digits and dashes)."""
    title: str
    caption: str = ""
    """What to look for in the figure."""
    figure: Figure | None = None
    tables: tuple[Table, ...] = ()
    items: tuple[str, ...] = ()
    """Sentences shown as a list (findings, notes)."""
    texts: tuple[tuple[str, str], ...] = ()
    """``(label, text)`` blocks shown verbatim (and escaped), e.g. samples of repeated sequences."""
    missing: tuple[str, ...] = ()
    """What could not be shown and why; a section with only this is still rendered."""

    def __post_init__(self) -> None:
        if not self.key or not all(c.isalnum() or c == "-" for c in self.key):
            raise RepeatlabError(f"Section.key must be letters, digits and dashes, got {self.key!r}")

    @property
    def is_empty(self) -> bool:
        return self.figure is None and not self.tables and not self.items and not self.texts


@dataclass(frozen=True, kw_only=True)
class Report:
    """A whole report: a title, facts about its source, and its sections in order."""

    title: str
    source: str
    """The directory the report was made from."""
    facts: tuple[tuple[str, str], ...] = ()
    """``(label, value)`` pairs shown under the title (runs done, sizes, ...)."""
    sections: tuple[Section, ...] = field(default_factory=tuple)

    @property
    def missing(self) -> tuple[tuple[str, str], ...]:
        """``(section title, what is missing)`` for every section."""
        return tuple((s.title, m) for s in self.sections for m in s.missing)


# Number formatting ---------------------------------------------------------------------------------------------


def format_value(value: Any) -> str:
    """A table cell: counts with K/M/B suffixes are left to callers; floats get 4 significant digits."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        return "–" if math.isnan(number) else f"{number:.4g}"
    return str(value)


def format_count(value: Any) -> str:
    """1234567 -> ``1.23M``: parameter and token counts."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    number = float(value)
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(number) >= scale:
            return f"{number / scale:.3g}{unit}"
    return f"{number:.3g}"


def format_multiplier(value: Any) -> str:
    """An effective-size multiplier: ``×0.45``."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"×{float(value):.3g}"


def format_epochs(value: Any) -> str:
    """Repeated epochs: ``100`` or ``2.5``."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    number = float(value)
    if number >= 1e4:
        return format_count(number)
    return f"{number:.0f}" if number >= 10 or number == round(number) else f"{number:.3g}"


def format_fraction(value: Any) -> str:
    """A repeated fraction: ``10%``."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{100 * float(value):.3g}%"


def join_names(names: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    names = list(names)
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]
