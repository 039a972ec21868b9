"""Small helpers shared by CLI commands: token-count parsing, option checks and table rendering."""

from __future__ import annotations

import math
import re

from rich.console import Console
from rich.table import Table

from repeatlab.errors import RepeatlabError

console = Console()

_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9, "t": 10**12}


def parse_count(text: str) -> int:
    """Parse a token or parameter count such as ``1000000``, ``1e6``, ``10M`` or ``2.5B``."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmbgt]?)\s*", text.lower())
    if not match:
        raise RepeatlabError(f"cannot read {text!r} as a count; write e.g. 1000000, 1e6, 10M or 2.5B")
    value = float(match.group(1)) * _SUFFIX[match.group(2)]
    if not math.isfinite(value):  # 1e999 reads as infinity
        raise RepeatlabError(f"{text.strip()!r} is too large to be a count; write e.g. 1000000, 1e6, 10M or 2.5B")
    return int(round(value))


def refuse_without(option: str, value: object, needed: str, *, given: bool, purpose: str) -> None:
    """Refuse an option given without the one it needs, which would otherwise be silently ignored (``value`` is
    ``None`` when the option was not given)."""
    if value is not None and not given:
        raise RepeatlabError(f"{option} {value} needs {needed} ({purpose}); give {needed}, or leave {option} out")


def print_rows(title: str, rows: list[tuple[str, str]]) -> None:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for label, value in rows:
        table.add_row(label, value)
    console.print(table)


