"""Write synthetic sweep and run directories through the real writers (``repeatlab.records``).

Real sweeps take hours, so the report is tested on directories whose numbers come from known laws: control
losses from L(N) = 1.8 + (3e4 / N)^0.35, repeated runs from the same curve at a smaller *effective* size that
dips around a per-size peak in repeated epochs (copying and prefix matching dip twice as hard, as in Hernandez
et al. 2022), and data-constrained runs from a data-constrained law. Run as a script it writes a demo sweep:

    python tests/report/synthetic.py OUT_DIR
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from repeatlab.io import write_json
from repeatlab.layout import CONFIG_FILE, ERROR_FILE, PROBES_FILE, SPEC_FILE, SUMMARY_FILE
from repeatlab.records import run_row, run_status, write_record

PLANTED = "<script>window.__pwned = 1; document.title = 'PWNED'</script><img src=x onerror=\"window.__pwned=2\">"
"""Corpus text that must show up as text, never run, in a report."""


@dataclass(frozen=True)
class Size:
    name: str
    n_layer: int
    d_model: int
    n_head: int

    @property
    def params(self) -> int:
        return 12 * self.n_layer * self.d_model**2


SIZES = (
    Size("tiny-1l", 1, 64, 2),
    Size("tiny-2l", 2, 64, 2),
    Size("tiny-4l", 4, 128, 2),
    Size("hern-4l", 4, 256, 4),
)


@dataclass(frozen=True)
class SweepSpec:
    sizes: tuple[Size, ...] = SIZES
    fractions: tuple[float, ...] = (0.1, 0.5)
    epochs: tuple[int, ...] = (10, 100, 1000, 10000)
    seeds: tuple[int, ...] = (0,)
    total_tokens: int = 2_000_000
    data_constrained_unique: tuple[int, ...] = ()
    """Unique tokens U of data-constrained runs (none by default); each is run for every ``data_constrained_epochs``
    (R = 1 being a control of D = U tokens), as ``repeatlab sweep`` lays out a data-constrained grid."""
    data_constrained_epochs: tuple[int, ...] = (1, 2, 4, 10, 40)
    unique_controls: bool = False
    """Also a control on the (1 - f) T unique tokens of each fraction, as a grid with ``unique_controls`` has."""
    n_failed: int = 1
    n_pending: int = 1
    with_results: bool = True
    with_probes: bool = True
    with_metrics: bool = True
    drop_columns: tuple[str, ...] = ()
    data_dir: Path | None = None
    """A prepared dataset to point configs at (for the repeated-sequence samples)."""
    mixture_dir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def control_loss(n: float) -> float:
    return 1.8 + (3e4 / n) ** 0.35


def peak_epochs(n: float) -> float:
    return 400.0 * (n / 1e5) ** -0.3


def multiplier(n: float, f: float, e: float) -> float:
    """Effective-size multiplier: a bump in log E around the size's peak, deeper for larger f."""
    bump = math.exp(-((math.log10(e) - math.log10(peak_epochs(n))) ** 2) / 0.8)
    return math.exp(-3.0 * f * bump)


def induction_score(n: float) -> float:
    return 0.95 * prefix_score(n)


def copying_loss(n: float) -> float:
    return 0.3 + (2e4 / n) ** 0.5


def prefix_score(n: float) -> float:
    return 1.0 - 0.6 * (2e4 / n) ** 0.3


REFERENCE_TOKENS = 2_000_000
"""Training length at which ``control_loss`` holds; data-constrained runs add a data term relative to it."""


def dc_loss(n: float, d: float, u: float) -> float:
    """A data-constrained law (Chinchilla form at Muennighoff et al.'s effective data D', R_D* = 5) that equals
    ``control_loss`` for unique data (U = D) of ``REFERENCE_TOKENS`` tokens."""
    r_d = max(d / u - 1, 0.0)
    d_eff = u + u * 5.0 * (1 - math.exp(-r_d / 5.0))
    return control_loss(n) + 100.0 / d_eff**0.35 - 100.0 / REFERENCE_TOKENS**0.35


def write_sweep(root: Path, spec: SweepSpec = SweepSpec()) -> Path:
    """Write ``root/results.parquet``, ``grid.toml`` and ``runs/<id>/`` for ``spec``; return ``root``."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for size in spec.sizes:
        for seed in spec.seeds:
            rows.append(_run(root, spec, size, "control", 0.0, 1, None, seed, rng))
            for f in spec.fractions:
                for e in spec.epochs:
                    rows.append(_run(root, spec, size, "repeated", f, e, None, seed, rng))
            if spec.unique_controls:
                for f in spec.fractions:
                    rows.append(_run(root, spec, size, "control", 0.0, 1, None, seed, rng,
                                     total=round((1 - f) * spec.total_tokens)))
            totals = sorted({u * e for u in spec.data_constrained_unique for e in spec.data_constrained_epochs})
            for total in totals:
                if total != spec.total_tokens:
                    rows.append(_run(root, spec, size, "control", 0.0, 1, None, seed, rng, total=total))
            for u in spec.data_constrained_unique:
                for e in spec.data_constrained_epochs:
                    if e > 1:
                        rows.append(_run(root, spec, size, "data_constrained", 0.0, e, u, seed, rng, total=u * e))
    for i in range(spec.n_failed):
        rows.append(_failed(root, spec, i))
    for i in range(spec.n_pending):
        rows.append(_unfinished(root, spec, f"pending-{i}", 0.1))
    frame = pd.DataFrame(rows).drop(columns=list(spec.drop_columns), errors="ignore")
    if spec.with_results:
        frame.to_parquet(root / "results.parquet", index=False)
    (root / "grid.toml").write_text(_grid_toml(spec), encoding="utf-8")
    return root


def write_run(path: Path, size: Size = SIZES[2], *, f: float = 0.1, e: int = 100) -> Path:
    """A single repeated run directory (no sweep around it)."""
    spec = SweepSpec(sizes=(size,))
    _run(path.parent, spec, size, "repeated", f, e, None, 0, np.random.default_rng(1), run_dir=path)
    return path


def _run(root: Path, spec: SweepSpec, size: Size, kind: str, f: float, e: int, unique: float | None, seed: int,
         rng: np.random.Generator, run_dir: Path | None = None, total: float | None = None) -> dict[str, Any]:
    n = float(size.params)
    total = float(total or spec.total_tokens)
    if kind == "control" and total == spec.total_tokens:
        run_id, m, loss = f"{size.name}-control-s{seed}", 1.0, control_loss(n)
    elif kind == "control":
        run_id, m, loss = f"{size.name}-control-D{total:.3g}-s{seed}", 1.0, dc_loss(n, total, total)
    elif kind == "repeated":
        m = multiplier(n, f, e)
        run_id, loss = f"{size.name}-f{f:g}-E{e}-s{seed}", control_loss(n * m)
    else:
        run_id, m, loss = f"{size.name}-U{unique:.3g}-E{e}-s{seed}", 1.0, dc_loss(n, total, unique)
    loss *= math.exp(rng.normal(0, 0.002))
    repeated_final = max(0.02, loss * math.exp(-e / 150)) if kind == "repeated" else None
    copy = copying_loss(n * m**2)
    prefix = prefix_score(n * m**1.5)
    run_dir = run_dir or root / "runs" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    probes = {"induction.max": induction_score(n * m**1.5), "prefix_matching.max": prefix,
              "copying.repeated_copies_loss": copy, "icl.score": -0.5 * m,
              "memorisation.repeated_exact_match_rate": 0.0 if kind == "control" else min(1.0, e / 1000)}
    config = {"model": size.name, "dataset": str(spec.data_dir or root / "data"),
              "mixture": str(spec.mixture_dir or root / "mixtures" / run_id), "train": {"seed": seed}}
    write_record(run_dir / CONFIG_FILE, config)
    if spec.with_metrics:
        _write_metrics(run_dir / "metrics.jsonl", loss, repeated_final, total)
    unique_achieved = unique if unique is not None else (total * (1 - f) + total * f / e)
    summary = {"steps": 100, "tokens": total, "test_loss": loss, "repeated_loss": repeated_final,
               "train_loss": loss * 0.97 if kind == "control" else loss * 0.9, "wall_time_s": 10.0 + n / 1e5,
               "n_params": n + 256 * size.d_model * 2, "n_params_non_embedding": n, "model": size.name,
               "model_config": {"n_layer": size.n_layer, "d_model": size.d_model, "n_head": size.n_head},
               "mixture": {"kind": kind, "total_tokens": total, "unique_tokens": unique_achieved,
                           "repeated_fraction": f, "repeated_epochs": float(e)}}
    write_record(run_dir / SUMMARY_FILE, summary)
    point = {"kind": kind, "model": size.name, "total_tokens": total, "repeated_fraction": f,
             "repeated_epochs": float(e), "unique_tokens": unique, "seed": seed}
    sweep_run = {"run_id": run_id, "spec": {"point": point}}
    write_record(run_dir / SPEC_FILE, sweep_run)
    probes_file = _write_probes(run_dir / PROBES_FILE, size, m, probes) if spec.with_probes else None
    # The results row is the one ``repeatlab sweep collect`` builds from these files.
    return run_row(run_id, run_status(run_dir, probes_required=False), sweep_run=sweep_run, config=config,
                   summary=summary, probes=probes_file if probes_file is not None else {"summary": probes})


def _write_metrics(path: Path, final: float, repeated_final: float | None, total: float) -> None:
    lines = []
    for i in range(1, 21):
        tokens = total * i / 20
        progress = (1 / 20) / (i / 20)
        test = final + (8.0 - final) * progress**1.2
        repeated = None if repeated_final is None else repeated_final + (8.0 - repeated_final) * progress**2
        lines.append(json.dumps({"step": i * 5, "tokens_seen": tokens, "train_loss": test * 1.02, "test_loss": test,
                                 "repeated_loss": repeated, "lr": 1e-3, "wall_time_s": i * 0.5, "tokens_per_s": 1e5}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _write_probes(path: Path, size: Size, m: float, summary: dict[str, float]) -> dict[str, Any]:
    rng = np.random.default_rng(size.n_layer * 100 + size.d_model)
    base = rng.uniform(0.0, 0.1, (size.n_layer, size.n_head))
    induction, prefix = base.copy(), base.copy() * 0.5
    for layer in range(1, size.n_layer):
        induction[layer, layer % size.n_head] = induction_score(size.params * m**1.5)
        prefix[layer, layer % size.n_head] = prefix_score(size.params * m**1.5)
    heads = {name: {"per_head": scores.tolist(), "max": float(scores.max()), "mean": float(scores.mean()), "top_heads": []}
             for name, scores in (("induction", induction), ("prefix_matching", prefix))}
    data = {"model": {"n_layer": size.n_layer, "n_head": size.n_head}, "summary": summary, "heads": heads}
    write_record(path, data)
    return data


def _failed(root: Path, spec: SweepSpec, i: int) -> dict[str, Any]:
    error = {"message": f"CUDA out of memory {PLANTED}", "type": "OutOfMemoryError"}
    return _unfinished(root, spec, f"failed-{i}", 0.5, error=error)


def _unfinished(root: Path, spec: SweepSpec, run_id: str, f: float, *,
                error: dict[str, Any] | None = None) -> dict[str, Any]:
    """A repeated run of the largest size that has not trained: pending, or failed with ``error``."""
    size, run_dir = spec.sizes[-1], root / "runs" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    point = {"kind": "repeated", "model": size.name, "total_tokens": float(spec.total_tokens),
             "repeated_fraction": f, "repeated_epochs": 3.0, "seed": 0}
    sweep_run = {"run_id": run_id, "spec": {"point": point}}
    write_record(run_dir / SPEC_FILE, sweep_run)
    if error is not None:
        write_json(run_dir / ERROR_FILE, error)
    row = run_row(run_id, run_status(run_dir, probes_required=False), sweep_run=sweep_run, error=error)
    return {**row, "params": float(size.params)}  # as collect fills it from the size table


def _grid_toml(spec: SweepSpec) -> str:
    sizes = ", ".join(f'"{s.name}"' for s in spec.sizes)
    return (f"models = [{sizes}]\nrepeated_fractions = {list(spec.fractions)}\n"
            f"repeated_epochs = {list(spec.epochs)}\nseeds = {list(spec.seeds)}\n")


def write_corpus_data(root: Path, documents: list[str], *, context: int = 128) -> tuple[Path, Path]:
    """A byte-level prepared dataset of ``documents`` and a small repeated mixture over it: ``(data, mixture)``."""
    from repeatlab.data.mixture import MixtureSpec, make_mixture
    from repeatlab.data.prepare import PrepareConfig, prepare_dataset

    docs = root / "corpus"
    docs.mkdir(parents=True, exist_ok=True)
    for i, text in enumerate(documents):
        (docs / f"doc{i:03d}.txt").write_text(text, encoding="utf-8")
    prepare_dataset(PrepareConfig(source=str(docs), tokenizer="byte", context=context, test_fraction=0.1), root / "data")
    make_mixture(root / "data", MixtureSpec(total_tokens=40 * context, repeated_fraction=0.5, repeated_epochs=4),
                 root / "mixtures" / "repeated")
    return root / "data", root / "mixtures" / "repeated"


def demo_documents(n: int = 60) -> list[str]:
    words = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "seven", "wizards", "quietly", "hex", "jolly", "vexing", "bards"]
    return [f"Document {i}. " + " ".join(words[(i * 7 + j * 3) % len(words)] for j in range(60)) + "." for i in range(n)]


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python tests/report/synthetic.py OUT_DIR")
    out = Path(sys.argv[1])
    data_dir, mixture_dir = write_corpus_data(out, demo_documents())
    write_sweep(out, SweepSpec(data_constrained_unique=(100_000, 500_000), data_dir=data_dir, mixture_dir=mixture_dir))
