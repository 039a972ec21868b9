"""Shared fixtures: the published reference tables (copies in tests/laws/data, see its README)."""

from __future__ import annotations

from pathlib import Path

import pytest

from repeatlab.laws import (
    BootstrapConfig,
    ChinchillaLaw,
    FitConfig,
    IdentifyConfig,
    LawFit,
    RunTable,
    fit_chinchilla,
    load_runs,
)

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def datablations_runs() -> RunTable:
    """The 182 C4 runs of Muennighoff et al. 2023, by their numeric columns (run names are never parsed)."""
    return load_runs(DATA / "datablations_c4_runs.csv", columns={"val_loss": "loss"})


CHINCHILLA_COLUMNS = {"Model Size": "params", "Training FLOP": "flops"}
"""The digitised table's column names, renamed to repeatlab's (D is then C / 6N)."""


@pytest.fixture(scope="session")
def chinchilla_points() -> RunTable:
    """Hoffmann et al.'s Figure 4 points as Besiroglu et al. digitised them, all 245 (their fits drop 5)."""
    return load_runs(DATA / "chinchilla_fig4_svg_points.csv", columns=CHINCHILLA_COLUMNS)


@pytest.fixture(scope="session")
def chinchilla_fit(chinchilla_points: RunTable) -> LawFit[ChinchillaLaw]:
    """Hoffmann et al.'s 4,500-start grid on the 240 points Epoch's rule keeps, with 1,000 seeded bootstrap refits
    and the identification (profiles of every constant)."""
    return fit_chinchilla(
        chinchilla_points,
        config=FitConfig(drop_highest_loss=5),
        bootstrap=BootstrapConfig(n_resamples=1000, seed=0),
        identify=IdentifyConfig(),
    )
