"""``repeatlab probe RUNDIR``: run the interpretability probes on a trained run and write ``probes.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import torch
import typer

from repeatlab.cli.common import console, print_rows
from repeatlab.cli.errors import user_errors
from repeatlab.config import override, parse_overrides
from repeatlab.errors import RepeatlabError
from repeatlab.io import check_output_file, output_lock
from repeatlab.records import write_record
from repeatlab.layout import PROBES_FILE
from repeatlab.probes import PROBE_NAMES, ProbeConfig, ProbeResults, run_probes
from repeatlab.train.run import load_run


@user_errors
def probe(
    run_dir: Annotated[Path, typer.Argument(help="Run directory written by 'repeatlab train'")],
    out: Annotated[Path | None, typer.Option(help="Output JSON (default: RUNDIR/probes.json)")] = None,
    probes: Annotated[list[str] | None, typer.Option(help=f"Probes to run, comma-separated or repeated, of "
                                                          f"{','.join(PROBE_NAMES)}; default: every token probe, "
                                                          f"or regression for a vector model")] = None,
    seed: Annotated[int, typer.Option(help="Seed of every random choice of the probes")] = 0,
    checkpoint: Annotated[str, typer.Option(help="final, latest, or a checkpoint name such as step_0000120")] = "final",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    ablate: Annotated[str | None, typer.Option(help="Heads to ablate as LAYER.HEAD,...; default: the top "
                                                    "induction heads")] = None,
    ablation_mode: Annotated[str, typer.Option(help="zero or mean")] = "mean",
    batch_size: Annotated[int, typer.Option(help="Sequences per forward pass")] = 16,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Any ProbeConfig field, e.g. --set "
                                                                "n_test_sequences=256 (repeatable)")] = None,
) -> None:
    """Measure induction, prefix-matching, previous/duplicate-token and OV-copying scores per head, the ICL
    score, the copying eval, memorisation of the repeated subset and head ablation (for an in-context regression
    model: its match with one step of gradient descent); write them as JSON."""
    config = ProbeConfig(seed=seed, batch_size=batch_size, ablation_mode=ablation_mode)  # type: ignore[arg-type]
    updates: dict[str, Any] = {}
    if probes:
        updates["probes"] = [name.strip() for item in probes for name in item.split(",") if name.strip()]
    if ablate:
        updates["ablation_heads"] = [_parse_head(item) for item in ablate.split(",") if item.strip()]
    updates.update(parse_overrides(set_ or []))
    if updates:
        config = override(config, updates)
    target = out or Path(run_dir) / PROBES_FILE
    check_output_file(target, example=PROBES_FILE)  # before the probes run
    # Writing into the run directory needs the run's one-writer lock (a sweep worker may be probing it).
    with output_lock(run_dir if out is None else target):
        run = load_run(run_dir, device=_device(device), checkpoint=checkpoint)
        results = run_probes(run.model, run.dataset, run.mixture, config)
        record = results.to_dict() | {"run_dir": str(Path(run_dir).resolve()), "checkpoint": checkpoint}
        write_record(target, record, kind=PROBES_FILE)
    _print_summary(results)
    console.print(f"wrote {target}", soft_wrap=True)


def _device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name not in ("cpu", "cuda"):
        raise RepeatlabError(f"--device must be auto, cpu or cuda, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise RepeatlabError("--device cuda was asked for but no CUDA device is available")
    return name


def _parse_head(text: str) -> list[int]:
    layer, sep, head = text.strip().partition(".")
    if not sep or not layer.isdigit() or not head.isdigit():
        raise RepeatlabError(f"--ablate expects heads as LAYER.HEAD (e.g. 1.3), got {text.strip()!r}")
    return [int(layer), int(head)]



def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _print_summary(results: ProbeResults) -> None:
    rows = []
    for name, scores in results.head_scores.items():
        flat = int(scores.argmax())
        layer, head = divmod(flat, scores.shape[1])
        rows.append((name, f"max {float(scores.max()):.3f} at head {layer}.{head}"))
    if results.icl is not None:
        early, late = results.icl.positions
        rows.append(("ICL score", f"{results.icl.score:+.4f} (loss at token {late} - token {early})"))
        rows.append(("test loss", _fmt(results.icl.test_loss)))
    if results.copying is not None:
        rows.append(("copying loss", f"copy 1 {results.copying.first_copy_loss:.4f}, copies 2+ "
                                     f"{results.copying.repeated_copies_loss:.4f}"))
    for group, memo in (results.memorisation or {}).items():
        rows.append((f"memorised ({group})", f"exact {_fmt(memo.exact_match_rate)}, per token "
                                             f"{_fmt(memo.token_match_rate)} of {memo.n_sequences}"))
    if results.ablation is not None:
        heads = ",".join(f"{layer}.{head}" for layer, head in results.ablation.heads)
        delta = ", ".join(f"{name} {value:+.4f}" for name, value in results.ablation.delta.items())
        rows.append((f"ablate {heads} ({results.ablation.mode})", delta))
    if results.regression is not None:
        gd = results.regression
        rows.append((f"loss vs {gd.n_steps} GD step(s)", f"{gd.model_loss:.4f} vs {gd.gd_loss:.4f} (ratio "
                                                          f"{gd.loss_ratio:.3f}; predicting 0: {gd.zero_loss:.4f})"))
        rows.append(("cosine with GD", f"predictions {gd.prediction_cosine:.4f}, sensitivities "
                                       f"{gd.sensitivity_cosine:.4f}"))
    print_rows("probes", rows)
