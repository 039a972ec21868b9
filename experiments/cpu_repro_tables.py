"""The tables of docs/reproduction.md from a finished ``cpu-repro`` sweep (``repeatlab reproduce cpu``).

Prints, as Markdown: the controls (losses against the bigram baseline, how much they still fell over the last half
of training, probe scores), every repeated grid point against both controls of its own seed, effective sizes by
metric with their seed range, and head ablation at each size's worst repeat count against its control. The
numbers come from the report's own analysis (``repeatlab.report``), so the docs and the report agree.

    python experiments/cpu_repro_tables.py runs/cpu-repro/sweep
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from repeatlab.data.baselines import dataset_bigram_baseline
from repeatlab.data.prepared import load_prepared
from repeatlab.report import Analysis, load_sweep
from repeatlab.report.sections.paired import paired_runs, seed_spread as spread


def late_drop(an: Analysis, run_id: str) -> float:
    """Test loss at the evaluation nearest half of training minus the final test loss."""
    metrics = an.data.runs[run_id].metrics
    metrics = metrics[np.isfinite(metrics["test_loss"])]
    half = metrics.iloc[(metrics["tokens_seen"] - metrics["tokens_seen"].max() / 2).abs().argmin()]
    return float(half["test_loss"] - metrics["test_loss"].iloc[-1])


def markdown(frame: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def controls_table(an: Analysis, bigram: float) -> pd.DataFrame:
    done, tokens = an.done, an.control_tokens
    rows = []
    for model in an.sizes:
        runs = done[(done["model"] == model) & (done["kind"] == "control")]
        full, unique = runs[np.isclose(runs["total_tokens"], tokens)], runs[~np.isclose(runs["total_tokens"], tokens)]
        rows.append({
            "size": model, "N": f"{int(full['params'].iloc[0]):,}", "tokens/N": f"{tokens / full['params'].iloc[0]:.0f}",
            "test loss": spread(full["test_loss"]), "(1-f)T control": spread(unique["test_loss"]),
            "below bigram": f"{bigram - full['test_loss'].mean():.3f}",
            "drop over last half": spread(pd.Series([late_drop(an, r) for r in full["run_id"]])),
            "induction": spread(full["probe_induction_max"], ".3f"),
            "prefix matching": spread(full["probe_prefix_matching_max"], ".3f"),
            "copying gain": spread(full["probe_copying_first_copy_loss"] - full["probe_copying_repeated_copies_loss"]),
        })
    return pd.DataFrame(rows)


def repeated_table(an: Analysis) -> pd.DataFrame:
    runs = paired_runs(an)
    rows = []
    for (model, epochs), group in runs.groupby(["model", "repeated_epochs"], sort=False):
        rows.append({
            "size": model, "E": int(epochs), "achieved f": spread(group["repeated_fraction_achieved"]),
            "test loss": spread(group["test_loss"]), "− control": spread(group["delta_full"], "+.3f"),
            "worse in": f"{int((group['delta_full'] > 0).sum())}/{len(group)}",
            "− (1-f)T control": spread(group["delta_unique"], "+.3f"),
            "repeated-subset loss": spread(group["repeated_loss"]),
            "memorised": spread(100 * group["probe_memorisation_repeated_exact_match_rate"], ".0f"),
            "N_eff/N test": spread(group.get("mult_test", pd.Series(dtype=float)), ".2f"),
            "N_eff/N copying": spread(group.get("mult_copying", pd.Series(dtype=float)), ".2f"),
            "N_eff/N prefix": spread(group.get("mult_prefix_matching", pd.Series(dtype=float)), ".2f"),
            "N_eff/N induction": spread(group.get("mult_induction", pd.Series(dtype=float)), ".2f"),
        })
    order = {m: i for i, m in enumerate(an.sizes)}
    return pd.DataFrame(rows).sort_values(["size", "E"], key=lambda s: s.map(order) if s.name == "size" else s)


def ablation_table(an: Analysis) -> pd.DataFrame:
    done, rows = an.done, []
    for peak in an.peaks.to_dict("records"):
        model = peak["model"]
        runs = done[(done["model"] == model) & (done["kind"] == "repeated")
                    & (done["repeated_epochs"] == peak["repeated_epochs"])]
        control = done[(done["model"] == model) & (done["kind"] == "control")
                       & np.isclose(done["total_tokens"], an.control_tokens)]
        for label, group in (("control", control), (f"E={int(peak['repeated_epochs'])}", runs)):
            rows.append({"size": model, "run": label,
                         "Δ test loss": spread(group["probe_ablation_delta_test_loss"], "+.3f"),
                         "Δ copying loss": spread(group["probe_ablation_delta_repeated_copies_loss"], "+.3f"),
                         "Δ ICL score": spread(group["probe_ablation_delta_icl_score"], "+.3f")})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", type=Path)
    args = parser.parse_args()
    an = Analysis(data=load_sweep(args.sweep))
    bigram = dataset_bigram_baseline(load_prepared(args.sweep / "data")).test_loss
    print(f"bigram baseline of the training pool: {bigram:.3f} nats/token\n")
    print(markdown(controls_table(an, bigram)), "\n")
    print(markdown(repeated_table(an)), "\n")
    for key, curve in an.curves.items():
        fit = getattr(curve, "fit", None)
        how = curve if isinstance(curve, str) else f"{curve.method}" + (f", R² = {fit.r_squared:.3f}" if fit else "")
        print(f"- control curve of {key}: {how}")
    peaks = an.peaks
    print("\nworst E per size:", ", ".join(f"{r['model']}: E={int(r['repeated_epochs'])}" for r in peaks.to_dict("records")))
    region = an.poor_region
    if not isinstance(region, str):
        for name, edge in (("left", region.left), ("right", region.right)):
            if edge is not None:
                print(f"- {name} edge of the poor-performance band: E ∝ N^{edge.alpha:.2f}")
    print()
    print(markdown(ablation_table(an)))


if __name__ == "__main__":
    main()
