"""Report sections of training dynamics and transfer, built from synthetic run records (no model is loaded)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from repeatlab.io import write_json
from repeatlab.report import build_report, load_sweep, render_html
from repeatlab.report.analysis import Analysis
from repeatlab.report.sections.dynamics import DYNAMICS_SECTIONS, ood_table, phase_change, probe_curves_section

TOKENS = [0, 1_000, 3_000, 10_000, 30_000, 100_000]


def write_run(root: Path, run_id: str, *, kind: str, epochs: float, induction: list[float], test_loss: float,
              python_loss: float) -> None:
    run = root / "runs" / run_id
    run.mkdir(parents=True)
    write_json(run / "config.json",
               {"model": "tiny-2l", "train": {"seed": 0, "extra_evals": {"python": "python-stdlib"}}})
    lines = [{"step": i, "tokens_seen": t, "test_loss": test_loss + 1 / (i + 1), "induction.max": v,
              "python_loss": python_loss} for i, (t, v) in enumerate(zip(TOKENS, induction, strict=True))]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    write_json(run / "summary.json", {
        "test_loss": test_loss, "python_loss": python_loss, "repeated_loss": None, "train_loss": test_loss,
        "n_params_non_embedding": 98_304, "n_params": 120_000, "model": "tiny-2l", "tokens": TOKENS[-1],
        "mixture": {"kind": kind, "repeated_fraction": 0.0 if kind == "control" else 0.5, "repeated_epochs": epochs},
    })


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    write_run(tmp_path, "control", kind="control", epochs=1, induction=[0.05, 0.05, 0.06, 0.7, 0.8, 0.82],
              test_loss=2.0, python_loss=3.0)
    write_run(tmp_path, "rep-e10", kind="repeated", epochs=10, induction=[0.05, 0.05, 0.05, 0.06, 0.5, 0.55],
              test_loss=2.1, python_loss=3.45)
    write_run(tmp_path, "rep-e100", kind="repeated", epochs=100, induction=[0.05, 0.05, 0.06, 0.07, 0.07, 0.08],
              test_loss=2.2, python_loss=3.3)
    write_json(tmp_path / "finetune" / "finetune.json", {"stage": {}, "note": None, "rows": [
        {"run": "ft-control", "model": "tiny-2l", "pretrain_kind": "control", "pretrain_repeated_fraction": 0.0,
         "pretrain_repeated_epochs": 1.0, "finetuned_loss": 1.9, "scratch_loss": 2.3, "n_eff_finetuned": 2e5,
         "n_eff_scratch": 1e5, "multiplier": 2.0},
        {"run": "ft-rep-e100", "model": "tiny-2l", "pretrain_kind": "repeated", "pretrain_repeated_fraction": 0.5,
         "pretrain_repeated_epochs": 100.0, "finetuned_loss": 2.4, "scratch_loss": 2.3, "n_eff_finetuned": 6.25e4,
         "n_eff_scratch": 1e5, "multiplier": 0.625}]})
    return tmp_path


def test_phase_change_is_the_steepest_rise_or_none() -> None:
    assert phase_change(TOKENS, [0.05, 0.05, 0.06, 0.7, 0.8, 0.82]) == 10_000
    assert phase_change(TOKENS, [0.05, 0.05, 0.06, 0.07, 0.07, 0.08]) is None
    assert phase_change([1, 2, float("nan"), 4], [0.0, 0.1, 0.9, 0.5]) == 4


def test_sections_draw_curves_ood_damage_and_finetuning(sweep: Path) -> None:
    report = build_report(load_sweep(sweep), sections=DYNAMICS_SECTIONS)
    sections = {s.key: s for s in report.sections}
    assert set(sections) == {"probe-curves", "ood-degradation", "finetune"}
    for section in sections.values():
        assert section.figure is not None and section.figure.uri.startswith("data:image/png;base64,")
        assert not section.missing
    curves = {row[0]: row for row in sections["probe-curves"].tables[0].rows}
    columns = sections["probe-curves"].tables[0].columns
    assert curves["control"][columns.index("phase_change_tokens")] == "10K"
    assert curves["rep-e100"][columns.index("phase_change_tokens")] == "–"
    assert "1 of 2 repeated runs lose more out of distribution" in sections["ood-degradation"].items[0]
    assert "×0.625" in {cell for row in sections["finetune"].tables[0].rows for cell in row}
    html = render_html(report)
    assert html.count("data:image/png;base64,") == 3


def test_ood_table_is_relative_to_the_control(sweep: Path) -> None:
    table = ood_table(Analysis(data=load_sweep(sweep))).set_index("run_id")
    assert table.loc["rep-e10", "id_increase"] == pytest.approx(0.05)
    assert table.loc["rep-e10", "ood_increase"] == pytest.approx(0.15)
    assert np.isclose(table.loc["rep-e100", "ood_increase"], 0.1)


def test_sections_are_absent_without_their_data(tmp_path: Path) -> None:
    write_run(tmp_path, "control", kind="control", epochs=1, induction=[0.1] * 6, test_loss=2.0, python_loss=3.0)
    metrics = tmp_path / "runs" / "control" / "metrics.jsonl"
    rows: list[dict[str, Any]] = [json.loads(line) for line in metrics.read_text().splitlines()]
    metrics.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "induction.max"}) + "\n" for r in rows))
    an = Analysis(data=load_sweep(tmp_path))
    assert probe_curves_section(an) is None
    report = build_report(load_sweep(tmp_path), sections=DYNAMICS_SECTIONS)
    assert [s.key for s in report.sections] == ["ood-degradation"] and report.sections[0].missing
