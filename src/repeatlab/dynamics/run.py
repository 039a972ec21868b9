"""``train_with_probes``: train a run with the probe evaluators its config asks for.

``repeatlab.train`` knows the probe names only as data (``TrainConfig.probe_metrics``); this is where they
meet the probe functions, one layer above the trainer. The CLI's ``train`` command calls it in place of
``repeatlab.train.train`` (the sweep runner should too); for a config without probe metrics the two are the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repeatlab.dynamics.evaluators import probe_evaluators
from repeatlab.train.config import RunConfig
from repeatlab.train.run import SUMMARY_FILE, ProgressFn, train


def train_with_probes(config: RunConfig, run_dir: Path, *, progress: ProgressFn | None = None) -> dict[str, Any]:
    """``repeatlab.train.train`` with the step evaluators of ``config.train.probe_metrics``; returns the summary."""
    if (Path(run_dir) / SUMMARY_FILE).is_file():
        return train(config, run_dir, progress=progress)  # checks the config, returns the summary, builds nothing
    return train(config, run_dir, progress=progress, evaluators=probe_evaluators(config) or None)


__all__ = ["train_with_probes"]
