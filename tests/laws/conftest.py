"""Shared fixtures: the published reference tables (copies in tests/laws/data, see its README)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from repeatlab.laws import RunTable, load_runs

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def datablations_runs() -> RunTable:
    """The 182 C4 runs of Muennighoff et al. 2023, by their numeric columns (run names are never parsed)."""
    return load_runs(DATA / "datablations_c4_runs.csv", columns={"val_loss": "loss"})


@pytest.fixture(scope="session")
def chinchilla_points() -> RunTable:
    """Hoffmann et al.'s Figure 4 points as Besiroglu et al. digitised them, less the 5 of highest loss (240)."""
    frame = pd.read_csv(DATA / "chinchilla_fig4_svg_points.csv")
    frame = frame.nsmallest(len(frame) - 5, "loss")
    return load_runs(
        pd.DataFrame({"params": frame["Model Size"], "flops": frame["Training FLOP"], "loss": frame["loss"]})
    )
