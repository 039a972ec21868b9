"""Showing corpus text safely: truncated, with control characters made visible, escaped per medium.

Repeated spans are arbitrary corpus bytes: they may hold newlines, terminal escape codes, rich
markup (``[bold]``) or HTML. The JSON keeps the raw (truncated) text; every display escapes it.
"""

from __future__ import annotations

import unicodedata

from rich.markup import escape as rich_escape

PREVIEW_CHARS = 160
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\"}


def truncate(text: str, max_chars: int = PREVIEW_CHARS) -> str:
    """At most ``max_chars`` characters, ending in an ellipsis when cut."""
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def visible(text: str) -> str:
    """Backslash escapes for newlines, tabs and other control/format characters, so a span stays on one line."""
    out = []
    for char in text:
        if char in _NAMED:
            out.append(_NAMED[char])
        elif unicodedata.category(char) in {"Cc", "Cf", "Zl", "Zp"}:
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def for_terminal(text: str) -> str:
    """Visible and with rich markup escaped, for a rich table cell."""
    return rich_escape(visible(text))

