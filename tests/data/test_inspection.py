"""``batch_at_step``/``decode_batch``: the rows shown for a step are the rows the trainer's loader yields there."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from repeatlab.data import batch_at_step, decode_batch
from repeatlab.data.loader import MixtureLoader
from repeatlab.data.mixture import MixtureSpec, build_mixture
from repeatlab.data.prepared import PreparedDataset, load_prepared
from repeatlab.data.regression import RegressionTask, write_regression_dataset
from repeatlab.errors import RepeatlabError


@pytest.fixture()
def mixture(prepared: PreparedDataset):
    spec = MixtureSpec(total_tokens=403 * prepared.context, repeated_fraction=0.2, repeated_epochs=8, seed=5)
    return build_mixture(prepared, spec)


@pytest.mark.parametrize("step", [0, 7, 39])
def test_the_rows_shown_are_those_the_loader_yields_at_the_step(prepared: PreparedDataset, mixture,
                                                                 step: int) -> None:
    trained = next(b for i, b in enumerate(MixtureLoader(prepared, mixture, batch_size=10)) if i == step)
    shown = decode_batch(prepared, batch_at_step(prepared, mixture, batch_size=10, step=step))
    assert [r.sequence_id for r in shown] == trained.sequence_ids.tolist()
    assert trained.sequence_ids.tolist() == mixture.order[step * 10:(step + 1) * 10].tolist()
    assert [r.is_repeat for r in shown] == trained.is_repeat.tolist()
    assert [r.is_repeat for r in shown] == np.isin(trained.sequence_ids, mixture.repeated_ids).tolist()
    rows = prepared.sequences("train")
    for row, inputs, targets in zip(shown, trained.inputs.numpy(), trained.targets.numpy(), strict=True):
        np.testing.assert_array_equal(row.tokens[:-1], inputs)
        np.testing.assert_array_equal(row.tokens[1:], targets)
        np.testing.assert_array_equal(row.tokens, rows[row.sequence_id])
        assert row.text == prepared.tokenizer.decode(rows[row.sequence_id].tolist())


def test_some_row_of_a_repeated_mixture_is_marked_repeated(prepared: PreparedDataset, mixture) -> None:
    marks = [r.is_repeat for step in range(40)
             for r in decode_batch(prepared, batch_at_step(prepared, mixture, batch_size=10, step=step))]
    assert sum(marks) == int(np.isin(mixture.order[:400], mixture.repeated_ids).sum()) > 0


def test_rows_limits_the_rows_and_bad_requests_are_refused(prepared: PreparedDataset, mixture) -> None:
    batch = batch_at_step(prepared, mixture, batch_size=10, step=2)
    assert [r.row for r in decode_batch(prepared, batch, max_rows=3)] == [0, 1, 2]
    with pytest.raises(RepeatlabError, match="at least 1"):
        decode_batch(prepared, batch, max_rows=0)
    with pytest.raises(RepeatlabError, match="outside the 40 steps .* from 0 to 39"):
        batch_at_step(prepared, mixture, batch_size=10, step=40)


def test_a_vector_dataset_has_no_text_to_show(tmp_path: Path) -> None:
    task = RegressionTask(dim=4, n_pairs=6, n_train_sequences=300, n_test_sequences=40, seed=3)
    dataset = load_prepared(write_regression_dataset(task, tmp_path / "data"))
    mixture = build_mixture(dataset, MixtureSpec(total_tokens=100 * dataset.context, seed=0))
    batch = batch_at_step(dataset, mixture, batch_size=10, step=1)
    with pytest.raises(RepeatlabError, match="vector dataset .*no text to show"):
        decode_batch(dataset, batch)
