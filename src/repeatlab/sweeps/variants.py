"""A sweep's two variant axes: data variants of a synthetic task, and training variants with sibling references.

Data variants: named variants of a synthetic task, each replacing some of the task's fields.

Reddy 2023's phase diagram asks how in-context and in-weights learning depend on the task itself (the number
of classes K, the burstiness B), so one sweep must train on several datasets. A grid's ``[data_variants.<name>]``
tables each replace fields of the task that ``[data]``'s source names, e.g. for ``source = "classification"``::

    [data_variants.K128-B6]
    n_classes = 128
    burstiness = 6

A synthetic task source names the ``PrepareConfig`` field that holds its parameters (``classification`` ->
``PrepareConfig.classification``, a ``ClassificationTask``), so any task added to ``PrepareConfig`` the same way
gets variants with no change here. Corpus sources have no variants: their data is a file, not parameters.

Training variants (``[train_variants.<name>]``) replace optimiser/training fields; an intervention's ``reference``
may name a *sibling*, ``"@<variant>"`` in the grid: the same point's run of that variant. The grid rewrites it to
``"@<run id>"`` in the run spec (stable: a run id does not depend on where the sweep lives) and the runner to that
run's directory.
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from typing import Any, get_args, get_type_hints

from collections.abc import Callable

from repeatlab.config import ConfigError, from_dict, to_dict
from repeatlab.data.prepare import PrepareConfig
from repeatlab.errors import RepeatlabError
from repeatlab.train.config import TrainConfig


def task_type(source: str) -> type | None:
    """The parameter dataclass of synthetic task source ``source`` (its ``PrepareConfig`` field's type), or
    ``None`` for a corpus source."""
    field_type = get_type_hints(PrepareConfig).get(source)
    tasks = [arg for arg in (*get_args(field_type), field_type) if isinstance(arg, type)
             and dataclasses.is_dataclass(arg)]
    return tasks[0] if tasks else None


def variant_data(data: PrepareConfig, name: str, updates: dict[str, Any]) -> PrepareConfig:
    """``data`` with variant ``name``'s ``updates`` applied to its task's fields (validated; errors name the
    variant)."""
    where = f"grid.data_variants.{name}"
    task_cls = task_type(data.source)
    if task_cls is None:
        raise RepeatlabError(f"{where}: data variants replace fields of a synthetic task, but data.source = "
                             f"{data.source!r} is a corpus; use a task source (e.g. source = \"classification\") "
                             "or remove [data_variants]")
    base = getattr(data, data.source) or task_cls()
    try:
        task = from_dict(task_cls, {**to_dict(base), **updates}, where=where)
        return replace(data, **{data.source: task})
    except ConfigError:
        raise
    except (RepeatlabError, ValueError, TypeError) as exc:
        raise RepeatlabError(f"{where}: {exc}") from None


def variant_datasets(data: PrepareConfig, variants: dict[str, dict[str, Any]]) -> dict[str, PrepareConfig]:
    """Each variant's data, by name, in the grid's order; refuses two variants with the same data."""
    out: dict[str, PrepareConfig] = {}
    for name, updates in variants.items():
        if not isinstance(updates, dict):
            raise RepeatlabError(f"grid.data_variants.{name} must be a table of task fields, got {updates!r}")
        config = variant_data(data, name, updates)
        same = next((other for other, seen in out.items() if seen == config), None)
        if same is not None:
            raise RepeatlabError(f"grid.data_variants: {same} and {name} give the same data; remove one or change "
                                 "its fields")
        out[name] = config
    return out


SIBLING = "@"
"""Prefix of an intervention ``reference`` naming a sibling run: a train variant in a grid, a run id in a spec."""


def sibling_references(train: TrainConfig) -> list[str]:
    """What the ``@...`` references of ``train``'s interventions name."""
    return [item.reference[len(SIBLING):] for item in train.interventions
            if item.reference is not None and item.reference.startswith(SIBLING)]


def with_siblings(train: TrainConfig, resolve: Callable[[str], str]) -> TrainConfig:
    """``train`` with each ``@name`` reference replaced by ``resolve(name)``."""
    return replace(train, interventions=tuple(
        replace(item, reference=resolve(item.reference[len(SIBLING):]))
        if item.reference is not None and item.reference.startswith(SIBLING) else item
        for item in train.interventions))


def check_train_variants(variants: dict[str, Any], training_of: Callable[[str], TrainConfig]) -> None:
    """Refuse a variant that is not a table, and a sibling reference to an unknown variant, to the variant itself,
    or to a variant that has references of its own (references go one level deep: the sweep runs two waves).
    ``training_of(name)`` is the variant's validated training settings."""
    for name, updates in variants.items():
        if not isinstance(updates, dict):
            raise RepeatlabError(f"grid.train_variants.{name} must be a table of optim.* / train.* fields, got "
                                 f"{updates!r}")
    for name in variants:
        for target in sibling_references(training_of(name)):
            if target not in variants or target == name:
                raise RepeatlabError(f"grid.train_variants.{name}: reference '@{target}' must name another of the "
                                     f"grid's train variants ({', '.join(variants)})")
            if sibling_references(training_of(target)):
                raise RepeatlabError(f"grid.train_variants.{name}: its reference '@{target}' refers to another "
                                     "variant itself; a reference must be a run without references")


__all__ = ["SIBLING", "check_train_variants", "sibling_references", "task_type", "variant_data", "variant_datasets",
           "with_siblings"]
