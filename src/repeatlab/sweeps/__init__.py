"""Sweeps: grids of model size x repetition x seed, run locally or on Ray, resumable, collected to Parquet.

Typical use::

    from repeatlab.sweeps import load_grid, run_sweep, collect
    result = run_sweep(load_grid("cpu-tiny"), "runs/cpu-tiny", workers=2)
    table = collect("runs/cpu-tiny")        # the same table as runs/cpu-tiny/results.parquet
"""

from repeatlab.sweeps.results import COLUMNS, LAW_METRICS, add_law_columns, collect, run_rows
from repeatlab.sweeps.driver import SweepPlan, SweepResult, plan_sweep, run_sweep
from repeatlab.sweeps.grid import (
    GridConfig,
    ResourcesConfig,
    RunPoint,
    RunSpec,
    expand_grid,
    grid_to_toml,
    load_grid,
    preset_names,
)
from repeatlab.sweeps.runner import RunOutcome, execute_run
from repeatlab.records import STATUSES, RunStatus
from repeatlab.sweeps.state import SweepDir

__all__ = [
    "COLUMNS",
    "LAW_METRICS",
    "STATUSES",
    "GridConfig",
    "ResourcesConfig",
    "RunOutcome",
    "RunPoint",
    "RunSpec",
    "RunStatus",
    "SweepDir",
    "SweepPlan",
    "SweepResult",
    "add_law_columns",
    "collect",
    "execute_run",
    "expand_grid",
    "grid_to_toml",
    "load_grid",
    "plan_sweep",
    "preset_names",
    "run_rows",
    "run_sweep",
]
