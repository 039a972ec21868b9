"""Typed dataclass configs: conversion to and from plain dicts/TOML/JSON, overrides and hashing.

Every component has a kw-only dataclass ``Config``; this module is the one place that turns
user input (TOML files, CLI overrides in the ``--set KEY=VALUE`` syntax, stored JSON) into those objects,
so unknown keys and wrong types are rejected here with a message that names the field.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import hashlib
import json
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

from repeatlab.errors import RepeatlabError
from repeatlab.io import read_utf8

T = TypeVar("T")


class ConfigError(RepeatlabError):
    """A config value or key is invalid; the message names the field and the fix."""


_ADDED_LATER = "repeatlab.added_later"

MAX_SEED = 2**64 - 1
"""The largest seed torch's generators take (numpy's take any non-negative integer)."""


MAX_VOCAB_SIZE = 2**32
"""The most token ids a dataset or model can have: ids are stored as (at most) 32-bit unsigned integers."""

MAX_CONTEXT = 2**20
"""The longest sequence a dataset or model can have, in tokens: attention's memory grows as its square, so a
million tokens is far beyond any model this project trains (its presets use 17 to 1,024)."""


def check_seed(where: str, value: object) -> None:
    """Refuse a seed that a random generator would reject later, inside the work: negative, too large, not whole."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_SEED:
        raise ConfigError(f"{where} must be an integer from 0 to 2^64 - 1, got {value!r}")


def check_int(where: str, value: object, low: int, high: int, *, reason: str) -> None:
    """Refuse a whole-number setting outside ``[low, high]`` when the config is built, not deep inside the work
    (where a huge value overflows a C integer, exhausts memory or loops for ever). The one line names the
    setting, the range, what the bound protects (``reason``) and the value."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"{where} must be an integer from {low:,} to {high:,} ({reason}), got {value!r}; "
                          f"give a value in that range")


def check_context(where: str, value: object, *, low: int = 1) -> None:
    """The one rule for a sequence length in tokens (a dataset's or a model's context)."""
    check_int(where, value, low, MAX_CONTEXT, reason="attention's memory grows as the square of the context")


def check_vocab_size(where: str, value: object, *, low: int = 1) -> None:
    """The one rule for a number of token ids (a tokenizer's or a model's vocabulary)."""
    check_int(where, value, low, MAX_VOCAB_SIZE, reason="token ids are stored as 32-bit integers")


def added_later(default: Any) -> Any:
    """A field added after run ids were first computed: left out of ``config_hash`` while it holds ``default``,
    so every run that existed before it keeps its id (and its directory) and only runs that use it get new ones."""
    return dataclasses.field(default=default, metadata={_ADDED_LATER: True})


def to_dict(config: Any) -> dict[str, Any]:
    """Convert a (nested) config dataclass to JSON-compatible plain data."""
    return _to_dict(config, for_hash=False)


def _to_dict(config: Any, *, for_hash: bool) -> dict[str, Any]:
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"expected a dataclass instance, got {type(config).__name__}")
    return {f.name: _plain(getattr(config, f.name), for_hash) for f in dataclasses.fields(config)
            if not (for_hash and f.metadata.get(_ADDED_LATER) and getattr(config, f.name) == f.default)}


def _plain(value: Any, for_hash: bool = False) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _to_dict(value, for_hash=for_hash)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_plain(v, for_hash) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, for_hash) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def from_dict(cls: type[T], data: dict[str, Any], *, where: str = "") -> T:
    """Build ``cls`` from plain data, recursing into nested dataclasses.

    Unknown keys raise ``ConfigError`` naming the key (a typo must not be silently ignored).
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a table of fields, got {type(data).__name__}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown config key {prefix}{unknown[0]!s} for {cls.__name__}; "
            f"valid keys are: {', '.join(sorted(fields))}"
        )
    kwargs = {
        name: _coerce(hints[name], value, f"{where}.{name}" if where else name) for name, value in data.items()
    }
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        options = [arg for arg in args if arg is not type(None)]
        if len(options) == 1:  # Optional[X]: X's own error names the real problem
            return _coerce(options[0], value, where)
        for arg in options:
            try:
                return _coerce(arg, value, where)
            except (ConfigError, TypeError, ValueError):
                continue
        raise ConfigError(f"{where}: {value!r} matches none of {tp}")
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{where}: {value!r} is not one of {list(get_args(tp))}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (inner, *_) = get_args(tp) or (Any,)
        items = [_coerce(inner, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        _, inner = get_args(tp) or (str, Any)
        return {k: _coerce(inner, v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where=where)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            raise ConfigError(f"{where}: {value!r} is not one of {[m.value for m in tp]}") from None
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is Path and isinstance(value, str):
        return Path(value)
    if tp is Any or tp is object:
        return value
    if isinstance(tp, type) and not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
    return value


def load_toml(cls: type[T], path: str | Path) -> T:
    """Load a config dataclass from a TOML file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = tomllib.loads(read_utf8(path))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    return from_dict(cls, data)


def load_json(cls: type[T], path: str | Path) -> T:
    """Load a config dataclass from a JSON file written by ``repeatlab.io.write_json``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = json.loads(read_utf8(path))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}); the file may be corrupt") from None
    return from_dict(cls, data)


def override(config: T, updates: dict[str, Any]) -> T:
    """Return a copy of ``config`` with dotted keys (``"train.lr"``) replaced and re-validated."""
    data = to_dict(config)
    for dotted, value in updates.items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            if not isinstance(node.get(key), dict):
                raise ConfigError(f"override {dotted!r}: {key!r} is not a section of {type(config).__name__}")
            node = node[key]
        if leaf not in node:
            raise ConfigError(f"override {dotted!r}: unknown key {leaf!r}")
        node[leaf] = value
    return from_dict(type(config), data)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``--set`` items (``["optim.lr=3e-4", "seeds=[0, 1]"]``) as dotted updates for ``override``: the one syntax of
    every command's ``--set``.

    A value is a TOML value (``3e-4``, ``true``, ``"text"``, ``[0, 1]``, ``{python = "python-stdlib"}``). What the
    JSON of older ``train --set`` took still reads the same: ``null`` is None and JSON objects parse. Anything else
    (``data.source=corpus.txt``, ``mode=zero``, a date) is kept as the string written.
    """
    updates: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE (e.g. train.checkpoint_every=500), got {item!r}")
        updates[key.strip()] = _override_value(raw.strip())
    return updates


def _override_value(text: str) -> Any:
    try:
        parsed = tomllib.loads(f"v = {text}")
        if len(parsed) != 1:  # a value holding a newline and a second key is text, not two settings
            return text
        value = parsed["v"]
    except tomllib.TOMLDecodeError:
        if text == "null":
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    if isinstance(value, (datetime.date, datetime.time)):  # no config field holds a date; 2024-01-01 is a name
        return text
    return value


def config_hash(config: Any, length: int = 12) -> str:
    """A stable short hash of a config's canonical JSON; used to name run directories."""
    canonical = json.dumps(_to_dict(config, for_hash=True), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:length]
