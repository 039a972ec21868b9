from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from repeatlab.data.mixture import MixtureSpec, build_mixture, load_mixture, make_mixture, write_mixture
from repeatlab.data.prepared import PreparedDataset


def test_repeated_mixture_invariants(prepared: PreparedDataset) -> None:
    context = prepared.context
    spec = MixtureSpec(total_tokens=800 * context, repeated_fraction=0.25, repeated_epochs=10, seed=1)
    mixture = build_mixture(prepared, spec)
    order, repeated = mixture.order, mixture.repeated_ids
    counts = np.bincount(order, minlength=prepared.n_sequences("train"))
    assert len(order) == 800
    assert len(repeated) == 20  # f*T/E = 0.25 * 800 / 10 sequences
    assert np.all(counts[repeated] == 10)  # each repeated id exactly E times
    unique = np.setdiff1d(np.flatnonzero(counts), repeated)
    assert np.all(counts[unique] == 1)  # each unique id exactly once
    assert len(np.intersect1d(unique, repeated)) == 0
    assert len(unique) == 800 - 20 * 10
    assert order.max() < prepared.n_sequences("train")  # ids index the training pool only
    m = mixture.manifest
    assert m["repeated_fraction"] == pytest.approx(0.25)
    assert m["unique_tokens"] == (len(unique) + 20) * context
    assert m["repeated_subset_tokens"] == 20 * context


@pytest.mark.parametrize(("fraction", "epochs"), [(0.1, 7), (0.03, 3), (0.5, 13), (0.001, 1)])
def test_rounding_stays_within_one_sequence(prepared: PreparedDataset, fraction: float, epochs: int) -> None:
    context = prepared.context
    total = 1234 * context + 5
    mixture = build_mixture(prepared, MixtureSpec(total_tokens=total, repeated_fraction=fraction, repeated_epochs=epochs))
    requested_subset = fraction * mixture.manifest["total_tokens"] / epochs
    assert abs(mixture.manifest["repeated_subset_tokens"] - requested_subset) <= context / 2
    assert abs(mixture.manifest["total_tokens"] - total) <= context / 2


def test_repeats_are_spread_over_training(prepared: PreparedDataset) -> None:
    spec = MixtureSpec(total_tokens=1000 * prepared.context, repeated_fraction=0.2, repeated_epochs=50, seed=0)
    mixture = build_mixture(prepared, spec)
    is_repeat = np.isin(mixture.order, mixture.repeated_ids)
    quarters = is_repeat.reshape(4, -1).mean(axis=1)
    assert np.all(np.abs(quarters - 0.2) < 0.06)


def test_same_seed_same_order_other_seed_differs(prepared: PreparedDataset) -> None:
    spec = MixtureSpec(total_tokens=500 * prepared.context, repeated_fraction=0.1, repeated_epochs=5, seed=7)
    a, b = build_mixture(prepared, spec), build_mixture(prepared, spec)
    np.testing.assert_array_equal(a.order, b.order)
    c = build_mixture(prepared, MixtureSpec(total_tokens=500 * prepared.context, repeated_fraction=0.1, repeated_epochs=5, seed=8))
    assert not np.array_equal(a.order, c.order)


def test_control_has_no_repeats(prepared: PreparedDataset) -> None:
    mixture = build_mixture(prepared, MixtureSpec(total_tokens=300 * prepared.context))
    assert mixture.manifest["kind"] == "control"
    assert len(np.unique(mixture.order)) == 300 and len(mixture.repeated_ids) == 0


def test_data_constrained_epochs_reshuffled(prepared: PreparedDataset) -> None:
    context = prepared.context
    spec = MixtureSpec(total_tokens=250 * context, unique_tokens=100 * context, seed=2)
    mixture = build_mixture(prepared, spec)
    order = mixture.order
    epochs = [order[:100], order[100:200], order[200:]]
    assert set(epochs[0]) == set(epochs[1]) and set(epochs[2]) <= set(epochs[0])
    assert len(set(epochs[0])) == 100 and len(set(epochs[2])) == 50  # last epoch partial, no duplicates
    assert not np.array_equal(epochs[0], epochs[1])  # reshuffled every epoch
    assert mixture.manifest["repeated_epochs"] == pytest.approx(2.5)
    assert mixture.manifest["unique_tokens"] == 100 * context


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"total_tokens": 0}, "total_tokens must be positive"),
        ({"total_tokens": 100, "repeated_fraction": 1.0}, r"repeated_fraction must be in \[0, 1\)"),
        ({"total_tokens": 100, "repeated_fraction": -0.1}, "repeated_fraction"),
        ({"total_tokens": 100, "repeated_epochs": 0}, "repeated_epochs must be at least 1"),
        ({"total_tokens": 100, "unique_tokens": 10, "repeated_fraction": 0.1}, "not both"),
    ],
)
def test_invalid_specs(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MixtureSpec(**kwargs)


def test_pool_too_small_says_needed_and_available(prepared: PreparedDataset, tmp_path: Path) -> None:
    pool = prepared.n_sequences("train")
    spec = MixtureSpec(total_tokens=(pool + 10) * prepared.context)
    with pytest.raises(ValueError, match=rf"needs {pool + 10:,} unique sequences .* holds only {pool:,}"):
        make_mixture(prepared.path, spec, tmp_path / "mix")
    assert not (tmp_path / "mix").exists()


def test_subset_smaller_than_a_sequence(prepared: PreparedDataset) -> None:
    spec = MixtureSpec(total_tokens=100 * prepared.context, repeated_fraction=0.01, repeated_epochs=10)
    with pytest.raises(ValueError, match="smaller than one sequence"):
        build_mixture(prepared, spec)


def test_written_mixture_roundtrip(prepared: PreparedDataset, tmp_path: Path) -> None:
    spec = MixtureSpec(total_tokens=400 * prepared.context, repeated_fraction=0.1, repeated_epochs=4, seed=3)
    made = make_mixture(prepared.path, spec, tmp_path / "mix")
    loaded = load_mixture(tmp_path / "mix")
    np.testing.assert_array_equal(made.order, loaded.order)
    np.testing.assert_array_equal(made.repeated_ids, loaded.repeated_ids)
    assert loaded.order.dtype == np.int64
    for key in ("kind", "total_tokens", "context", "n_sequences", "unique_tokens", "repeated_subset_tokens",
                "repeated_epochs", "repeated_fraction", "seed", "dataset"):
        assert key in loaded.manifest
    with pytest.raises(FileExistsError):
        write_mixture(made, tmp_path / "mix")
    (tmp_path / "mix" / "order.npy").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="corrupt"):
        load_mixture(tmp_path / "mix")


def test_billion_token_index_is_fast(tmp_path: Path) -> None:
    """10^9 tokens at context 1024 is ~1M sequences: index size grows with sequences, not tokens."""
    from repeatlab.data.prepared import PreparedDataset

    n_seq = 1_100_000
    meta = {"kind": "prepared", "source": "synthetic", "vocab_size": 50257, "context": 1024, "seed": 0,
            "dtype": "uint16", "train": {"n_tokens": n_seq * 1024 + 1, "n_sequences": n_seq},
            "test": {"n_tokens": 0, "n_sequences": 0}}
    pool = PreparedDataset(path=tmp_path, meta=meta)  # the index never touches token files
    start = time.perf_counter()
    mixture = build_mixture(pool, MixtureSpec(total_tokens=10**9, repeated_fraction=0.1, repeated_epochs=100))
    elapsed = time.perf_counter() - start
    assert mixture.n_sequences == round(10**9 / 1024)
    assert elapsed < 30  # generous bound on 2 shared cores; the benchmark reports the real figure
