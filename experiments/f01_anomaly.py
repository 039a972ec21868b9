"""Tabulate the f = 0.1 anomaly sweeps: repeated run minus its seed's control, and the token embeddings' effective rank.

Reads one or more sweep directories of ``experiments/f01-anomaly.toml`` (one per intervention) and prints, per
sweep and seed, the control's and the repeated run's test loss, their difference, and the participation ratio
(sum lambda)^2 / sum lambda^2 of the centred token embeddings of the 1,000 most frequent training tokens: the
effective rank whose collapse in the control an independent check proposed as the anomaly's cause.

    python experiments/f01_anomaly.py runs/anomaly-clip1 runs/anomaly-noclip runs/anomaly-clip0.25

Results: docs/reproduction.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from safetensors.numpy import load_file

from repeatlab.data.prepared import load_prepared
from repeatlab.probes.sequences import token_frequencies
from repeatlab.sweeps.results import collect

TOP_TOKENS = 1000


def participation_ratio(embeddings: np.ndarray) -> float:
    """Effective rank of a set of vectors: (sum of covariance eigenvalues)^2 / sum of their squares."""
    centred = embeddings - embeddings.mean(axis=0)
    eigenvalues = np.linalg.eigvalsh(centred.T @ centred / len(centred))
    return float(eigenvalues.sum() ** 2 / (eigenvalues**2).sum())


def embedding_rank(run_dir: Path, top: np.ndarray) -> float:
    weights = load_file(str(run_dir / "model.safetensors"))
    return participation_ratio(weights["wte.weight"][top].astype(np.float64))


def sweep_table(sweep: Path) -> pd.DataFrame:
    results = collect(sweep, write=False, laws=False)
    results = results[results["status"] == "done"]
    dataset = load_prepared(sweep / "data")
    top = np.argsort(-token_frequencies(dataset.tokens("train"), dataset.vocab_size))[:TOP_TOKENS]
    results = results.assign(rank=[embedding_rank(sweep / "runs" / r, top) for r in results["run_id"]])
    control = results[results["kind"] == "control"].set_index("seed")
    repeated = results[results["kind"] == "repeated"].set_index("seed")
    return pd.DataFrame({
        "sweep": sweep.name, "control": control["test_loss"], "repeated": repeated["test_loss"],
        "repeated - control": repeated["test_loss"] - control["test_loss"],
        "rank control": control["rank"], "rank repeated": repeated["rank"],
    }).reset_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweeps", type=Path, nargs="+")
    args = parser.parse_args()
    table = pd.concat([sweep_table(s) for s in args.sweeps], ignore_index=True)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
