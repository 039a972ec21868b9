"""The paired-by-seed section: each repeated run minus its own seed's controls, spreads and words for extrapolation."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from repeatlab.report import Analysis, build_report, load_sweep
from repeatlab.report.sections.findings import findings_section
from repeatlab.report.sections.paired import paired_runs, paired_section


@pytest.fixture(scope="module")
def paired(tmp_path_factory: pytest.TempPathFactory, synth: ModuleType):
    spec = synth.SweepSpec(sizes=synth.SIZES[:4], fractions=(0.1,), epochs=(10, 100, 1000), seeds=(0, 1, 2),
                           unique_controls=True, n_failed=0, n_pending=0)
    sweep = synth.write_sweep(tmp_path_factory.mktemp("paired") / "s", spec)
    section = next(s for s in build_report(load_sweep(sweep), sections=[paired_section]).sections)
    return pd.read_parquet(sweep / "results.parquet"), section


def test_differences_are_taken_against_the_same_seeds_controls(paired) -> None:
    results, section = paired
    table = pd.DataFrame(section.tables[0].rows, columns=section.tables[0].columns)
    model = results.sort_values("params")["model"].iloc[0]
    runs = results[(results["model"] == model) & (results["kind"] == "repeated") & (results["repeated_epochs"] == 100)]
    controls = results[(results["model"] == model) & (results["kind"] == "control")]
    full = controls[controls["total_tokens"] == 2_000_000].set_index("seed")["test_loss"]
    unique = controls[controls["total_tokens"] == 1_800_000].set_index("seed")["test_loss"]
    delta_full = runs.set_index("seed")["test_loss"] - full
    delta_unique = runs.set_index("seed")["test_loss"] - unique
    row = table[(table["model"] == model) & (table["E"] == "100")].iloc[0]
    assert row["seeds"] == "3"
    assert row["test loss − control"] == (f"{delta_full.mean():+.3f} [{delta_full.min():+.3f}, "
                                          f"{delta_full.max():+.3f}]")
    assert row["test loss − unique-token control"] == (f"{delta_unique.mean():+.3f} [{delta_unique.min():+.3f}, "
                                                       f"{delta_unique.max():+.3f}]")
    assert row["worse than control"] == f"{int((delta_full > 0).sum())}/3"


def test_effective_sizes_outside_the_controls_are_words_not_numbers(paired) -> None:
    _, section = paired
    table = pd.DataFrame(section.tables[0].rows, columns=section.tables[0].columns)
    cells = table["N_eff/N (test loss)"].tolist()
    # The synthetic smallest size at its worst E falls below every control; the rest interpolate.
    assert any(c.startswith("< every control") for c in cells), cells
    assert any(c.startswith("×") for c in cells), cells
    assert not any(c.startswith("×") and "e-" in c for c in cells)


def test_missing_controls_give_a_note_not_an_error(tmp_path: Path, synth: ModuleType) -> None:
    spec = synth.SweepSpec(sizes=synth.SIZES[:2], epochs=(10, 100), n_failed=0, n_pending=0)
    sweep = synth.write_sweep(tmp_path / "s", spec)
    results = pd.read_parquet(sweep / "results.parquet")
    results[results["kind"] != "control"].to_parquet(sweep / "results.parquet", index=False)
    for run_id in results.loc[results["kind"] == "control", "run_id"]:
        shutil.rmtree(sweep / "runs" / run_id)
    section = build_report(load_sweep(sweep), sections=[paired_section]).sections[0]
    assert section.missing and not section.tables


def test_copying_damage_is_not_claimed_when_the_controls_do_not_copy(tmp_path: Path, synth: ModuleType) -> None:
    spec = synth.SweepSpec(sizes=synth.SIZES[:4], fractions=(0.1,), epochs=(10, 100, 1000), n_failed=0, n_pending=0)
    sweep = synth.write_sweep(tmp_path / "s", spec)
    before = next(s for s in build_report(load_sweep(sweep), sections=[findings_section]).sections).items
    assert any("more damage to copying" in s or "copying is not hurt more" in s for s in before), before
    results = pd.read_parquet(sweep / "results.parquet")
    # Later copies predicted only 0.02 nats better than the first: no in-context copying at all.
    results["probe_copying_first_copy_loss"] = results["probe_copying_repeated_copies_loss"] + 0.02
    results.to_parquet(sweep / "results.parquet", index=False)
    after = next(s for s in build_report(load_sweep(sweep), sections=[findings_section]).sections).items
    assert any(s.startswith("The controls do not copy: they predict later copies of a paragraph only 0.020") for s in after)
    assert not any("damage to copying" in s or "Copying is damaged" in s for s in after), after


def test_a_metric_that_size_does_not_explain_gets_no_effective_sizes(tmp_path: Path, synth: ModuleType) -> None:
    spec = synth.SweepSpec(sizes=synth.SIZES[:4], fractions=(0.1,), epochs=(10, 100), n_failed=0, n_pending=0)
    sweep = synth.write_sweep(tmp_path / "s", spec)
    assert not isinstance(Analysis(data=load_sweep(sweep)).curves["induction"], str)  # the synthetic law fits
    results = pd.read_parquet(sweep / "results.parquet")
    # Induction scores at a uniform head's level, unrelated to size (models without induction heads).
    results["probe_induction_max"] = 0.014 + 0.001 * np.random.default_rng(0).standard_normal(len(results))
    results.to_parquet(sweep / "results.parquet", index=False)
    analysis = Analysis(data=load_sweep(sweep))
    assert "not explained by size" in analysis.curves["induction"]
    assert "mult_induction" not in paired_runs(analysis)
