"""The report built from synthetic sweeps: sections, findings from the numbers, escaping, partial sweeps."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from html import unescape
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from repeatlab.report import (
    SECTIONS,
    Analysis,
    ReportOptions,
    Section,
    build_report,
    load_sweep,
    render_html,
    write_report,
)
from repeatlab.report.sections.curves import curves_section
from repeatlab.report.sections.findings import findings_section

FIGURE_SECTIONS = (
    "degradation", "effective-size-heatmap", "learning-curves", "effective-size-by-metric", "head-maps",
    "control-scaling", "data-constrained",
)


def sections(report) -> dict[str, Section]:
    return {s.key: s for s in report.sections}


def test_full_sweep_has_every_figure_with_caption_and_numbers(full_report) -> None:
    by_key = sections(full_report)
    for key in FIGURE_SECTIONS:
        section = by_key[key]
        assert section.figure is not None and section.figure.uri.startswith("data:image/png;base64,"), key
        assert section.caption and section.tables and all(t.rows for t in section.tables), key
    assert by_key["findings"].items
    assert not full_report.missing, full_report.missing


def test_worst_repeat_count_findings_follow_the_numbers(full_sweep: Path, full_report) -> None:
    results = pd.read_parquet(full_sweep / "results.parquet")
    repeated = results[(results["kind"] == "repeated") & (results["status"] == "done") & (results["repeated_fraction"] == 0.1)]
    findings = sections(full_report)["findings"].items
    for model, rows in repeated.groupby("model"):
        worst = rows.loc[rows["test_loss"].idxmax()]
        same_length = results["total_tokens"] == rows["total_tokens"].iloc[0]  # not the data-constrained controls
        control = results[(results["model"] == model) & (results["kind"] == "control") & same_length]["test_loss"].mean()
        sentence = next(s for s in findings if s.startswith(f"For {model} ("))
        assert f"worst at E={worst['repeated_epochs']:.0f} " in sentence
        assert f"({worst['test_loss']:.3f} vs control {control:.3f})" in sentence
        controls = results[(results["kind"] == "control") & same_length]["params"]
        _assert_effective_size_in_words(sentence, worst["params"], controls.min(), controls.max())


def _assert_effective_size_in_words(sentence: str, params: float, smallest: float, largest: float) -> None:
    """A multiplier is printed only when it interpolates between control sizes; otherwise words say where it lies."""
    found = re.search(r"effective size ×(\d+(?:\.\d+)?(?:e[+-]?\d+)?)", sentence)
    if found is None:
        assert "worse than every control" in sentence or "better than every control" in sentence, sentence
        assert "×" not in sentence, sentence
    else:
        assert smallest <= float(found.group(1)) * params <= largest * 1.0001, sentence


def test_largest_damage_says_when_it_is_extrapolated(full_sweep: Path, full_report) -> None:
    results = pd.read_parquet(full_sweep / "results.parquet")
    sentence = next(s for s in sections(full_report)["findings"].items if s.startswith("The largest damage"))
    found = re.search(r"is for (\S+) at", sentence)
    assert found is not None, sentence
    params = results.loc[results["model"] == found.group(1), "params"].iloc[0]
    controls = results.loc[results["kind"] == "control", "params"]
    _assert_effective_size_in_words(sentence, params, controls.min(), controls.max())


def test_findings_change_when_the_numbers_do(tmp_path: Path, synth) -> None:
    spec = synth.SweepSpec(sizes=synth.SIZES[:2], epochs=(10, 100, 1000), n_failed=0, n_pending=0)
    sweep = synth.write_sweep(tmp_path / "s", spec)
    before = sections(build_report(load_sweep(sweep), sections=[findings_section]))["findings"].items
    results = pd.read_parquet(sweep / "results.parquet")
    target = results["run_id"] == "tiny-1l-f0.1-E10-s0"
    results.loc[target, "test_loss"] = 9.876
    results.to_parquet(sweep / "results.parquet")
    after = sections(build_report(load_sweep(sweep), sections=[findings_section]))["findings"].items
    assert any("tiny-1l" in s and "worst at E=10 " in s and "9.876" in s for s in after)
    assert not any("9.876" in s for s in before)


def test_html_is_one_offline_file(full_html: Path) -> None:
    html = full_html.read_text(encoding="utf-8")
    assert "Content-Security-Policy" in html and "default-src 'none'" in unescape(html)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)
    assert "<script" not in html.replace("&lt;script", "")
    assert "<link" not in html and "@import" not in html and "url(" not in html
    images = re.findall(r'<img src="([^"]{0,30})', html)
    assert len(images) == len(FIGURE_SECTIONS) and all(src.startswith("data:image/png;base64,") for src in images)


def test_corpus_text_and_errors_are_escaped(full_report, full_html: Path, synth) -> None:
    samples = sections(full_report)["repeated-samples"]
    assert samples.texts and any("<script>" in text for _, text in samples.texts)
    html = full_html.read_text(encoding="utf-8")
    assert "window.__pwned" in html  # the planted text is shown ...
    assert "<script>window.__pwned" not in html and 'onerror="window' not in html  # ... but never as markup
    assert "&lt;script&gt;window.__pwned" in html
    assert html.count("&lt;img src=x onerror=") >= 2  # in a repeated sample and in the failed run's error


def test_partial_sweep_without_results_or_controls(tmp_path: Path, synth) -> None:
    sweep = synth.write_sweep(tmp_path / "s", synth.SweepSpec(sizes=synth.SIZES[:3], epochs=(10, 100), with_results=False))
    for run in (sweep / "runs").glob("*-control-*"):
        shutil.rmtree(run)
    report = build_report(load_sweep(sweep))
    by_key = sections(report)
    missing = " ".join(m for _, m in report.missing)
    assert "no results.parquet" in missing
    assert "control" in missing  # no control level, no effective sizes
    assert by_key["degradation"].figure is not None  # the curves still show
    assert by_key["effective-size-heatmap"].figure is None
    assert "not shown" in render_html(report).lower() or "This report is partial" in render_html(report)


def test_partial_sweep_without_probes_metrics_or_copying_says_so(tmp_path: Path, synth) -> None:
    spec = synth.SweepSpec(sizes=synth.SIZES[:3], epochs=(10, 100), n_failed=0, n_pending=0, with_probes=False,
                           with_metrics=False, drop_columns=("probe_copying_repeated_copies_loss",))
    report = build_report(load_sweep(synth.write_sweep(tmp_path / "s", spec)))
    missing = " ".join(m for _, m in report.missing)
    for expected in ("per-head scores", "metrics.jsonl", "copying loss not shown"):
        assert expected in missing
    assert sections(report)["effective-size-by-metric"].figure is not None  # test loss and prefix matching remain
    assert "This report is partial" in render_html(report)


def test_partial_sweep_without_a_needed_column(tmp_path: Path, synth) -> None:
    spec = synth.SweepSpec(sizes=synth.SIZES[:2], epochs=(10, 100), drop_columns=("repeated_epochs",))
    sweep = synth.write_sweep(tmp_path / "s", spec)
    shutil.rmtree(sweep / "runs")  # the run files would fill the column back in
    report = build_report(load_sweep(sweep))
    by_key = sections(report)
    assert "repeated_epochs" in " ".join(by_key["degradation"].missing)
    assert by_key["control-scaling"].figure is not None


def test_only_failed_runs_still_gives_a_report(tmp_path: Path, synth) -> None:
    sweep = synth.write_sweep(tmp_path / "s", synth.SweepSpec(sizes=synth.SIZES[:1], fractions=(), epochs=(), n_failed=2))
    results = pd.read_parquet(sweep / "results.parquet")
    results = results[results["status"] != "done"]
    results.to_parquet(sweep / "results.parquet")
    for run in (sweep / "runs").glob("tiny-*"):
        shutil.rmtree(run)
    report = write_report(sweep, tmp_path / "r.html")
    assert (tmp_path / "r.html").is_file()
    by_key = sections(report)
    assert by_key["findings"].missing and by_key["overview"].tables
    assert all(s.figure is None for s in report.sections)


def test_single_run_report(tmp_path: Path, synth) -> None:
    run = synth.write_run(tmp_path / "run-a")
    report = build_report(load_sweep(run))
    by_key = sections(report)
    assert list(by_key) == ["overview", "findings", "learning-curves", "head-maps", "repeated-samples"]
    assert by_key["learning-curves"].figure is not None and by_key["head-maps"].figure is not None
    assert any(s.startswith("run-a ends at test loss") for s in by_key["findings"].items)
    assert any("strongest induction score" in s for s in by_key["findings"].items)


def test_chosen_curve_runs_and_unknown_ones(full_sweep: Path) -> None:
    options = ReportOptions(curve_runs=("tiny-1l-control-s0", "no-such-run"))
    report = build_report(load_sweep(full_sweep), options, sections=[curves_section])
    curves = sections(report)["learning-curves"]
    assert [row[0] for row in curves.tables[0].rows] == ["tiny-1l-control-s0"]
    assert any("no-such-run" in m for m in curves.missing)


def test_reference_fraction_can_be_chosen(tmp_path: Path, synth) -> None:
    sweep = synth.write_sweep(tmp_path / "s", synth.SweepSpec(sizes=synth.SIZES[:2], epochs=(10, 100)))
    assert Analysis(data=load_sweep(sweep)).reference_fraction == 0.1  # equal coverage: nearest to 10%
    an = Analysis(data=load_sweep(sweep), options=ReportOptions(repeated_fraction=0.4))
    assert an.reference_fraction == 0.5  # the nearest fraction the sweep has
    assert set(an.peaks["repeated_fraction"]) == {0.5}
    with pytest.raises(ValueError, match="repeated_fraction"):
        ReportOptions(repeated_fraction=1.5)


def test_a_new_section_is_one_function(full_sweep: Path) -> None:
    def audit_section(an: Analysis) -> Section:
        return Section(key="audit", title="Audit <b>", caption=f"{len(an.done)} finished runs", items=("x < y",))

    def broken_section(an: Analysis) -> Section:
        raise ValueError("the numbers cannot give this")

    report = build_report(load_sweep(full_sweep), sections=[audit_section, broken_section])
    assert [s.key for s in report.sections] == ["audit", "broken"]
    assert report.sections[1].missing == ("could not be built: the numbers cannot give this",)
    html = render_html(report)
    assert "Audit &lt;b&gt;" in html and "x &lt; y" in html


def test_multiple_seeds_are_averaged(tmp_path: Path, synth) -> None:
    spec = synth.SweepSpec(sizes=synth.SIZES[:2], epochs=(10, 100), seeds=(0, 1), n_failed=0, n_pending=0)
    an = Analysis(data=load_sweep(synth.write_sweep(tmp_path / "s", spec)))
    assert set(an.repeated["n_seeds"]) == {2}
    results = an.done[an.done["kind"] == "repeated"]
    expected = results.groupby(["model", "repeated_fraction", "repeated_epochs"])["test_loss"].mean().to_numpy()
    assert np.allclose(an.repeated.sort_values(["model", "repeated_fraction", "repeated_epochs"])["test_loss"], expected)


def test_report_never_imports_torch() -> None:
    code = "import sys, repeatlab.report, repeatlab.cli.report; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_any_missing_column_gives_a_report(tmp_path: Path, synth, monkeypatch: pytest.MonkeyPatch) -> None:
    """Drop each column of a small sweep in turn (and blank it): the report is partial, never an error.

    Figures are laid out but not rendered to PNG, and the data-constrained fit is skipped, to keep this fast;
    the full report covers both.
    """
    import repeatlab.report.analysis as analysis_module
    import repeatlab.report.sections as sections_package
    from repeatlab.laws.results import FitError
    from repeatlab.report.model import Figure

    def layout_only(fig, alt: str) -> Figure:
        fig.canvas.draw_idle()
        return Figure(uri="data:image/png;base64,", alt=alt)

    for module in vars(sections_package).values():
        if isinstance(module, ModuleType) and hasattr(module, "encode"):
            monkeypatch.setattr(module, "encode", layout_only)

    def no_fit(*args: object, **kwargs: object) -> None:
        raise FitError("skipped in this test")

    monkeypatch.setattr(analysis_module, "fit_data_constrained", no_fit)
    spec = synth.SweepSpec(sizes=synth.SIZES[:2], fractions=(0.1,), epochs=(10, 100), n_pending=0,
                           data_constrained_unique=(100_000,), data_constrained_epochs=(1, 4))
    sweep = synth.write_sweep(tmp_path / "s", spec)
    shutil.rmtree(sweep / "runs")  # nothing to fill the gaps from
    full = pd.read_parquet(sweep / "results.parquet")
    # The columns other columns are looked up by; a blanked key column is as bad as a missing one.
    variants = [full.drop(columns=[c]) for c in ("kind", "model", "params")]
    variants += [full.assign(**{c: None}) for c in ("run_id", "total_tokens")]
    for variant in variants:
        variant.to_parquet(sweep / "results.parquet")
        column = next(c for c in full.columns if c not in variant or variant[c].isna().all())
        report = build_report(load_sweep(sweep), sections=SECTIONS[1:])  # all but the overview's tables
        assert report.missing and render_html(report), column


def test_data_constrained_grid_shows_its_own_figures(tmp_path: Path, synth) -> None:
    spec = synth.SweepSpec(sizes=synth.SIZES[:3], fractions=(), epochs=(), data_constrained_unique=(100_000,),
                           n_failed=0, n_pending=0)
    report = build_report(load_sweep(synth.write_sweep(tmp_path / "s", spec)))
    by_key = sections(report)
    # Hernandez et al.'s figures do not apply (they are not "missing"); the data-constrained ones are drawn.
    assert list(by_key) == ["overview", "findings", "learning-curves", "head-maps", "control-scaling", "data-constrained"]
    assert by_key["data-constrained"].figure is not None and not by_key["data-constrained"].missing
    assert any("fresh tokens" in s for s in by_key["findings"].items)
    assert any("R_D* =" in s for s in by_key["findings"].items)
    assert "tiny-4l-U1e+05-E40-s0" in " ".join(by_key["head-maps"].tables[0].columns)  # the most-repeated run


def test_title_names_a_sweep_by_its_grid(tmp_path: Path, full_sweep: Path) -> None:
    sweep = shutil.copytree(full_sweep, tmp_path / "sweep")
    assert build_report(load_sweep(sweep)).title == "repeatlab report: sweep sweep"  # no grid name: the directory
    grid = sweep / "grid.toml"
    grid.write_text('name = "cpu-tiny"\n' + grid.read_text(encoding="utf-8"), encoding="utf-8")
    assert build_report(load_sweep(sweep)).title == "repeatlab report: sweep cpu-tiny"
