"""Scaling laws from tables of runs: fits, effective model size, the poor-performance region and a planner.

numpy/scipy only. Typical use::

    from repeatlab.laws import load_runs, fit_chinchilla, BootstrapConfig, FitConfig, IdentifyConfig
    fit = fit_chinchilla(load_runs("runs.csv"), bootstrap=BootstrapConfig(n_resamples=1000))
    fit.law.compute_optimal(1e21), fit.bootstrap.intervals["alpha"], fit.minima
    fit = fit_chinchilla(runs, config=FitConfig(drop_highest_loss=5), identify=IdentifyConfig())
    fit.dropped, [profile.verdict for profile in fit.identification.profiles]
"""

from repeatlab.laws.bootstrap import BootstrapConfig
from repeatlab.laws.effective import (
    ControlCurve,
    EffectiveSize,
    MetricScaling,
    control_curve,
    effective_sizes,
    fit_metric_scaling,
    outside_controls,
)
from repeatlab.laws.fit import (
    DATA_CONSTRAINED_FULL_GRID,
    DATABLATIONS_DECAY_GRID,
    DECAY_GRID,
    HOFFMANN_GRID,
    POWER_GRID,
    FitConfig,
    StartGrid,
    fit_chinchilla,
    fit_data_constrained,
    fit_power_law,
)
from repeatlab.laws.forms import (
    BESIROGLU_2024,
    BESIROGLU_2024_REPLICATE_EXACTLY,
    DATABLATIONS_C4,
    DATABLATIONS_C4_BASE,
    KAPLAN_2020,
    ChinchillaLaw,
    DataConstrainedLaw,
    PowerLaw,
)
from repeatlab.laws.identify import IdentifyConfig
from repeatlab.laws.optim import OptimizerConfig
from repeatlab.laws.planner import (
    Allocation,
    ComputePlan,
    RepeatPlan,
    RepeatRisk,
    default_repeat_counts,
    plan_compute,
    plan_repeats,
)
from repeatlab.laws.region import HERNANDEZ_2022, BoundaryLaw, PoorRegion, PoorRegionFit, SizeBand, find_poor_region
from repeatlab.laws.results import (
    BootstrapSummary,
    ConstantProfile,
    DroppedRun,
    FitError,
    Identification,
    Interval,
    LawFit,
    LocalMinimum,
)
from repeatlab.laws.table import RunsLike, RunTable, load_runs

__all__ = [
    "BESIROGLU_2024",
    "BESIROGLU_2024_REPLICATE_EXACTLY",
    "DATABLATIONS_C4",
    "DATABLATIONS_C4_BASE",
    "DATABLATIONS_DECAY_GRID",
    "DATA_CONSTRAINED_FULL_GRID",
    "DECAY_GRID",
    "HERNANDEZ_2022",
    "HOFFMANN_GRID",
    "KAPLAN_2020",
    "POWER_GRID",
    "Allocation",
    "BootstrapConfig",
    "BootstrapSummary",
    "BoundaryLaw",
    "ChinchillaLaw",
    "ComputePlan",
    "ConstantProfile",
    "ControlCurve",
    "DataConstrainedLaw",
    "DroppedRun",
    "EffectiveSize",
    "FitConfig",
    "FitError",
    "Identification",
    "IdentifyConfig",
    "Interval",
    "LawFit",
    "LocalMinimum",
    "MetricScaling",
    "OptimizerConfig",
    "PoorRegion",
    "PoorRegionFit",
    "PowerLaw",
    "RepeatPlan",
    "RepeatRisk",
    "RunTable",
    "RunsLike",
    "SizeBand",
    "StartGrid",
    "control_curve",
    "default_repeat_counts",
    "effective_sizes",
    "find_poor_region",
    "fit_chinchilla",
    "fit_data_constrained",
    "fit_metric_scaling",
    "fit_power_law",
    "load_runs",
    "outside_controls",
    "plan_compute",
    "plan_repeats",
]
