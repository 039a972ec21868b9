"""Prepare a sweep's datasets once: ``DIR/data``, or one ``DIR/data-<variant>`` per data variant.

Every run of a sweep trains on a dataset prepared here before any run starts, so workers only read them. A
dataset already on disk is reused when it was prepared from the same config, and refused otherwise: the runs
already trained on it would no longer match their grid.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from repeatlab.config import from_dict, to_dict
from repeatlab.data.prepare import PrepareConfig, prepare_dataset
from repeatlab.data.prepared import META_FILE, load_prepared
from repeatlab.errors import RepeatlabError
from repeatlab.sweeps.grid import GridConfig
from repeatlab.sweeps.state import SweepDir

Report = Callable[[dict[str, Any]], None]


def prepare_datasets(grid: GridConfig, sweep: SweepDir, say: Report) -> None:
    """Prepare each dataset of ``grid`` (``GridConfig.datasets``) that is not there yet; refuse one prepared
    from a different config."""
    for variant, data in grid.datasets.items():
        out = sweep.dataset_dir(variant)
        where = "[data]" if variant is None else f"data variant {variant}"
        if (out / META_FILE).is_file():
            # Read back through the config class first, so a field added since (at its default) is no difference.
            stored = to_dict(from_dict(PrepareConfig, load_prepared(out).meta["config"]))
            difference = _first_difference(stored, to_dict(data))
            if difference is not None:
                key, stored, asked = difference
                raise RepeatlabError(
                    f"{out} was prepared with data.{key} = {stored!r} but the grid's {where} asks for {asked!r}; "
                    f"runs of one sweep directory share their data: use another --out"
                )
            continue
        say({"event": "message", "text": f"preparing the dataset of {where} in {out} (once per sweep directory)"})
        prepare_dataset(data, out, progress=lambda text: say({"event": "message", "text": text}))


def _first_difference(stored: Any, asked: Any, prefix: str = "") -> tuple[str, Any, Any] | None:
    """``(dotted key, stored, asked)`` of the first field (in sorted order) where two config dicts differ."""
    if isinstance(stored, dict) and isinstance(asked, dict):
        for key in sorted(set(stored) | set(asked)):
            found = _first_difference(stored.get(key), asked.get(key), f"{prefix}{key}.")
            if found is not None:
                return found
        return None
    return None if stored == asked else (prefix.rstrip("."), stored, asked)


__all__ = ["prepare_datasets"]
