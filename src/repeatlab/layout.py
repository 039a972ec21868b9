"""File names of the directories repeatlab writes: a run, a sweep, a fine-tuning stage.

One module owns them, below every layer that reads or writes them (the trainer, the sweep, the report), so a
name can change in one place and the report, which must not import the trainer, reads what the trainer wrote.
"""

from __future__ import annotations

# A run directory (``repeatlab.train.run``).
CONFIG_FILE = "config.json"
"""The resolved ``RunConfig``, written before training starts."""
METRICS_FILE = "metrics.jsonl"
"""One JSON record per evaluation."""
SUMMARY_FILE = "summary.json"
"""Written last: its presence means the run finished."""
MODEL_FILE = "model.safetensors"
"""The final weights."""
CHECKPOINT_DIR = "checkpoints"
"""Resumable checkpoints, one ``step_NNNNNNN`` directory each."""
PROBES_FILE = "probes.json"
"""The probe suite's results (``repeatlab probe``, the sweep's probe stage)."""

# A sweep directory (``repeatlab.sweeps``).
GRID_FILE = "grid.toml"
RESULTS_FILE = "results.parquet"
RUNS_DIR = "runs"
DATA_DIR = "data"
"""The prepared dataset shared by every run of a grid without data variants."""
MIXTURES_DIR = "mixtures"
"""Mixtures, one ``<MixtureSpec hash>`` directory each, shared by the runs with that spec."""
SPEC_FILE = "sweep_run.json"
"""Per run: the grid point and run spec the sweep assigned to it."""
ERROR_FILE = "error.json"
ATTEMPTS_FILE = "attempts.jsonl"
HEARTBEAT_FILE = ".heartbeat"


def variant_dir(directory: str, variant: str | None) -> str:
    """``directory`` (``DATA_DIR``, ``MIXTURES_DIR``) of a grid's data variant: ``data-<variant>`` beside ``data``
    (a grid's data axis, ``GridConfig.data_variants``); ``directory`` itself for the grid's one dataset."""
    return directory if variant is None else f"{directory}-{variant}"

# A fine-tuning stage directory (``repeatlab.dynamics.finetune``).
FINETUNE_DIR = "finetune"
"""A sweep's fine-tuning stage, in the sweep directory (a sweep directory itself: runs/, results.parquet)."""
FINETUNE_FILE = "finetune.json"
"""The fine-tuned versus from-scratch comparison rows."""
