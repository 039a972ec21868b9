"""Human summaries of prepared datasets and mixtures, as (label, value) rows for any renderer."""

from __future__ import annotations

from pathlib import Path

from repeatlab.data.mixture import MANIFEST_FILE, Mixture, load_mixture
from repeatlab.data.prepared import META_FILE, PreparedDataset, load_prepared

Rows = list[tuple[str, str]]


def summarize_prepared(dataset: PreparedDataset) -> Rows:
    meta = dataset.meta
    rows: Rows = [
        ("kind", "prepared dataset"),
        ("path", str(dataset.path)),
        ("source", str(meta["source"])),
        ("tokenizer", f"{meta['tokenizer']} ({meta['vocab_size']:,} tokens, {meta['dtype']})"
                      + (f", from {meta['tokenizer_from']['dataset']}" if meta.get("tokenizer_from") else "")),
        ("context", f"{meta['context']} tokens"),
        ("documents", f"{meta['n_documents']:,}"),
        ("test duplicates removed from train", f"{meta['n_train_removed_as_test_duplicates']:,}"),
    ]
    for split in ("train", "test"):
        s = meta[split]
        rows.append(
            (split, f"{s['n_documents']:,} documents, {s['n_tokens']:,} tokens, {s['n_sequences']:,} sequences")
        )
    rows.append(("seed", str(meta["seed"])))
    return rows


def summarize_mixture(mixture: Mixture) -> Rows:
    m = mixture.manifest
    rows: Rows = [
        ("kind", f"mixture ({m['kind']})"),
        ("dataset", m["dataset"]),
        ("total tokens", f"{m['total_tokens']:,} ({m['n_sequences']:,} sequences of {m['context']})"),
        ("unique tokens", f"{m['unique_tokens']:,}"),
    ]
    if m["kind"] == "repeated":
        rows += [
            ("repeated subset", f"{m['repeated_subset_tokens']:,} tokens ({len(mixture.repeated_ids):,} sequences)"),
            ("repeated epochs", f"{m['repeated_epochs']:g}"),
            (
                "repeated fraction",
                f"{m['repeated_fraction']:.4f} achieved (requested {m['requested_repeated_fraction']:g})",
            ),
        ]
    elif m["kind"] == "data_constrained":
        rows.append(("epochs", f"{m['repeated_epochs']:.3f}"))
    rows.append(("seed", str(m["seed"])))
    return rows


def summarize_path(path: str | Path) -> Rows:
    """Summarise whichever of a prepared dataset or a mixture lives at ``path``."""
    path = Path(path)
    if (path / MANIFEST_FILE).is_file():
        return summarize_mixture(load_mixture(path))
    if (path / META_FILE).is_file():
        return summarize_prepared(load_prepared(path))
    raise FileNotFoundError(f"{path} is neither a prepared dataset nor a mixture")
