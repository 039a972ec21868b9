"""Write plain config data (the output of ``repeatlab.config.to_dict``) as TOML.

The standard library reads TOML but cannot write it; a sweep directory keeps a TOML copy of its
resolved grid, so this small writer covers what configs hold: scalars, arrays (of arrays) of scalars
or of inline tables, and nested tables. TOML has no null, so keys whose value is ``None`` are left out; ``dumps`` callers
check that the text reads back to the same config.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from repeatlab.errors import RepeatlabError

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def dumps(data: dict[str, Any]) -> str:
    """TOML text of ``data``: top-level scalars first, then one ``[table]`` per nested dict."""
    lines: list[str] = []
    _table(data, [], lines)
    return "\n".join(lines).strip() + "\n"


def _table(data: dict[str, Any], path: list[str], lines: list[str]) -> None:
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict) and v is not None}
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    if path and (scalars or not tables):
        lines.append("")
        lines.append("[" + ".".join(_key(p) for p in path) + "]")
    for key, value in scalars.items():
        lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in tables.items():
        _table(value, [*path, key], lines)


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        if any(v is None for v in value):
            raise RepeatlabError(f"TOML arrays cannot hold null: {value!r}")
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):  # an inline table: an array's element, such as one of train.interventions
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None) + "}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML: {value!r}")
