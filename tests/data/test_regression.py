"""In-context linear regression as a prepared dataset: the sequences are the task's, stored exactly, read as the
model's inputs and targets, and the dataset behaves like any other in mixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from repeatlab.data.loader import MixtureLoader
from repeatlab.data.mixture import MixtureSpec, build_mixture
from repeatlab.data.prepare import PrepareConfig, prepare_dataset
from repeatlab.data.prepared import load_prepared
from repeatlab.data.regression import RegressionTask, regression_task, tuning_sequences, write_regression_dataset
from repeatlab.errors import RepeatlabError

TASK = RegressionTask(dim=4, n_pairs=6, n_train_sequences=300, n_test_sequences=40, seed=3)


def test_every_sequence_is_one_linear_task() -> None:
    rows = TASK.sample(50, seed=0)  # [50, 7, 5]
    assert rows.shape == (50, TASK.context, TASK.d_vector) and rows.dtype == np.float32
    x, y = rows[..., :-1].astype(np.float64), rows[..., -1].astype(np.float64)
    assert np.all(np.abs(x) <= 1.0)
    for seq_x, seq_y in zip(x, y):
        # The weights solved from the context pairs predict the query exactly (noiseless, N >= d).
        w, *_ = np.linalg.lstsq(seq_x[:-1], seq_y[:-1], rcond=None)
        assert seq_x[-1] @ w == pytest.approx(seq_y[-1], abs=1e-4)
    assert not np.allclose(y[0], y[1])  # a fresh task per sequence


def test_noise_is_added_to_the_targets() -> None:
    clean = RegressionTask(dim=4, n_pairs=6).sample(20, seed=0)
    noisy = RegressionTask(dim=4, n_pairs=6, noise_std=0.5).sample(20, seed=0)
    np.testing.assert_array_equal(clean[..., :-1], noisy[..., :-1])
    assert 0.3 < float(np.std(noisy[..., -1] - clean[..., -1])) < 0.7


def test_dataset_roundtrip_and_batches(tmp_path: Path) -> None:
    dataset = load_prepared(write_regression_dataset(TASK, tmp_path / "data"))
    assert (dataset.d_vector, dataset.context, dataset.vocab_size) == (5, 7, 0)
    assert regression_task(dataset) == TASK
    np.testing.assert_array_equal(dataset.sequences("train"), TASK.sample(300, TASK.seed))
    np.testing.assert_array_equal(dataset.sequences("test"), TASK.sample(40, TASK.seed + 1))
    assert not np.array_equal(tuning_sequences(TASK, 40), dataset.sequences("test"))

    mixture = build_mixture(dataset, MixtureSpec(total_tokens=200 * TASK.context, repeated_fraction=0.25,
                                                 repeated_epochs=10, seed=1))
    batch = MixtureLoader(dataset, mixture, batch_size=8).batch(3)
    rows = torch.from_numpy(np.array(dataset.sequences("train")[batch.sequence_ids]))
    assert batch.inputs.shape == (8, 7, 5) and batch.targets.shape == (8, 7)
    torch.testing.assert_close(batch.inputs[:, :-1], rows[:, :-1])
    torch.testing.assert_close(batch.inputs[:, -1, :-1], rows[:, -1, :-1])
    assert torch.all(batch.inputs[:, -1, -1] == 0)  # the query's y is hidden
    torch.testing.assert_close(batch.targets[:, -1], rows[:, -1, -1])
    assert torch.isnan(batch.targets[:, :-1]).all()
    # The repetition knob counts whole sequences: 50 repeated-sequence slots, 5 distinct sequences seen 10 times.
    counts = np.bincount(mixture.order, minlength=300)
    assert sorted(set(counts[mixture.repeated_ids])) == [10] and len(mixture.repeated_ids) == 5


def test_writing_is_deterministic(tmp_path: Path) -> None:
    first = write_regression_dataset(TASK, tmp_path / "a")
    second = write_regression_dataset(TASK, tmp_path / "b")
    for name in ("train.bin", "test.bin"):
        assert (first / name).read_bytes() == (second / name).read_bytes()


def test_prepare_config_checks_the_context(tmp_path: Path) -> None:
    with pytest.raises(RepeatlabError, match="context must be 7 for the in-context regression task"):
        PrepareConfig(source="regression", context=8, regression=TASK)
    with pytest.raises(RepeatlabError, match="regression parameters were given but source is 'builtin'"):
        PrepareConfig(regression=TASK)
    dataset = prepare_dataset(PrepareConfig(source="regression", context=7, regression=TASK), tmp_path / "p")
    assert dataset.meta["config"]["regression"]["dim"] == 4


@pytest.mark.parametrize(("fields", "name"), [
    (dict(dim=0), "dim"), (dict(n_pairs=-1), "n_pairs"), (dict(noise_std=float("nan")), "noise_std"),
    (dict(noise_std=-1.0), "noise_std"), (dict(n_train_sequences=0), "n_train_sequences"), (dict(seed=-2), "seed"),
])
def test_task_validation_names_the_field(fields: dict, name: str) -> None:
    with pytest.raises(RepeatlabError, match=f"RegressionTask.{name}"):
        RegressionTask(**fields)


def test_damaged_vector_files_are_refused_at_load(tmp_path: Path) -> None:
    path = write_regression_dataset(TASK, tmp_path / "data")
    with open(path / "train.bin", "r+b") as handle:
        handle.truncate(100)
    with pytest.raises(RepeatlabError, match="train.bin is missing or has the wrong size"):
        load_prepared(path)
