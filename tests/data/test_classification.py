"""The in-context classification task: what each sequence and evaluation set must contain, on disk and in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from repeatlab.data.classification import (
    ClassificationTask,
    classification_tokenizer,
    dataset_task,
    load_eval_sequences,
    write_classification_dataset,
)
from repeatlab.data.prepared import PreparedDataset, load_prepared

TASK = ClassificationTask(n_classes=64, n_labels=8, n_pairs=6, burstiness=2, relabel_fraction=0.5, seed=3,
                          n_train_sequences=300, n_test_sequences=40, n_eval_sequences=32)


def consistent_within(items: np.ndarray, labels: np.ndarray) -> bool:
    return all(len(set(labels[r][items[r] == c])) == 1 for r in range(len(items)) for c in set(items[r]))


def test_training_sequences_layout_burstiness_and_labels() -> None:
    rows = TASK.training_sequences(2000, seed=0)
    assert rows.shape == (2000, TASK.context) == (2000, 13)
    items, labels = TASK.pairs(rows)
    assert items.min() >= 0 and items.max() < TASK.n_classes
    assert labels.min() >= 0 and labels.max() < TASK.n_labels
    assert (rows[:, -1] == TASK.eot_id).all()
    # The query (last) class is among the earlier items at least ``burstiness`` times in every sequence.
    assert ((items[:, :-1] == items[:, -1:]).sum(axis=1) >= TASK.burstiness).all()
    fixed = (labels == TASK.class_labels[items]).all(axis=1)
    # About half keep the fixed map; the others are relabelled, one label per class within each sequence.
    assert 0.4 < fixed.mean() < 0.65
    assert consistent_within(items[~fixed], labels[~fixed])
    # Zipf: class 0 is the most frequent item, far above the rarest half.
    counts = np.bincount(items.ravel(), minlength=TASK.n_classes)
    assert counts[0] == counts.max() and counts[0] > 10 * counts[TASK.n_classes // 2 :].mean()


def test_no_relabelling_keeps_the_class_label_map() -> None:
    task = ClassificationTask(n_classes=64, n_labels=8, n_pairs=6, relabel_fraction=0.0, seed=3)
    items, labels = task.pairs(task.training_sequences(500, seed=1))
    assert (labels == task.class_labels[items]).all()
    assert (task.class_labels == TASK.class_labels).all()  # the map depends on the seed only


def test_eval_sets_separate_context_from_weights() -> None:
    icl = TASK.eval_sequences("icl", 400, seed=5)
    iwl = TASK.eval_sequences("iwl", 400, seed=6)
    assert icl.shape == iwl.shape == (400, TASK.context + 1)
    items, labels = TASK.pairs(icl)
    assert ((items[:, :-1] == items[:, -1:]).sum(axis=1) >= TASK.burstiness).all()
    assert consistent_within(items, labels)
    # Fresh labels: the query's label agrees with the fixed map only by chance (1 / n_labels = 0.125).
    assert (labels[:, -1] == TASK.class_labels[items[:, -1]]).mean() < 0.25
    items, labels = TASK.pairs(iwl)
    assert not (items[:, :-1] == items[:, -1:]).any()
    assert (labels == TASK.class_labels[items]).all()
    with pytest.raises(ValueError, match="unknown evaluation set 'x'"):
        TASK.eval_sequences("x", 4, seed=0)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("n_classes", 1, "n_classes must be an integer >= 2"),
    ("n_classes", 6, r"n_classes \(6\) must exceed n_pairs"),
    ("burstiness", 0, r"burstiness must be an integer in \[1, n_pairs - 1"),
    ("burstiness", 8, r"burstiness must be an integer in \[1, n_pairs - 1"),
    ("relabel_fraction", 1.5, r"relabel_fraction must be in \[0, 1\]"),
    ("zipf_exponent", -1.0, "zipf_exponent must be >= 0"),
    ("n_train_sequences", 0, "n_train_sequences must be a positive integer"),
])
def test_bad_task_parameters_name_the_field(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ClassificationTask(**{"n_pairs": 8, field: value})


def test_written_dataset_windows_are_the_sequences(tmp_path: Path) -> None:
    out = write_classification_dataset(TASK, tmp_path / "icc")
    dataset = load_prepared(out)
    assert dataset.context == TASK.context and dataset.vocab_size == TASK.vocab_size
    assert dataset_task(dataset) == TASK
    windows = np.asarray(dataset.sequences("train"))
    expected = TASK.training_sequences(300, seed=TASK.seed)
    assert (windows[:, : TASK.context] == expected[: len(windows)]).all()  # one window per sequence, aligned
    assert load_eval_sequences(dataset, "icl").shape == (32, TASK.context + 1)
    assert dataset.tokenizer.decode(expected[0, :2].tolist()).split()[1].startswith("l")


def test_other_datasets_are_refused_by_name(prepared: PreparedDataset) -> None:
    with pytest.raises(ValueError, match="is not an in-context classification dataset"):
        dataset_task(prepared)
    with pytest.raises(ValueError, match="is not an in-context classification dataset"):
        load_eval_sequences(prepared, "icl")


def test_exemplars_vary_items_within_their_class() -> None:
    """Within-class variation in tokens: each item is one of its class's exemplars, the classes (and so labels
    and the evaluation sets' logic) are those of the one-exemplar task drawn from the same seed's class draws."""
    task = ClassificationTask(n_classes=16, n_labels=8, n_pairs=4, burstiness=2, relabel_fraction=0.0,
                              n_exemplars=3)
    assert (task.first_label, task.eot_id, task.vocab_size) == (48, 56, 57)
    rows = task.training_sequences(400, seed=1)
    items, labels = task.pairs(rows)
    assert rows[:, task.item_positions].max() < task.first_label and (items < task.n_classes).all()
    assert (labels == task.class_labels[items]).all()  # no relabelling: every label is its class's
    exemplars = rows[:, task.item_positions] % task.n_exemplars
    assert set(np.unique(exemplars)) == {0, 1, 2}
    icl = task.eval_sequences("icl", 200, seed=2)
    query_class = task.pairs(icl)[0][:, -1]
    assert ((task.pairs(icl)[0][:, :-1] == query_class[:, None]).sum(axis=1) >= task.burstiness).all()
    same_token = (icl[:, task.item_positions][:, :-1] == icl[:, task.query_position][:, None]).any(axis=1)
    assert 0 < same_token.mean() < 1  # the query's class is in context, its exact token only sometimes
    by_class = task.by_class(icl)
    assert (by_class[:, task.item_positions] == task.pairs(icl)[0]).all()
    assert classification_tokenizer(task).decode([4, 48]) == "c1.1 l0"


def test_one_exemplar_is_the_task_as_before() -> None:
    """``n_exemplars = 1`` draws nothing more, so the one-token-per-class task keeps its datasets (and, left out of
    run ids at its default, its runs: tests/sweeps/test_grid.py)."""
    task = ClassificationTask(n_classes=16, n_labels=8, n_pairs=4)
    rows = task.training_sequences(50, seed=3)
    assert task.first_label == task.n_classes and task.by_class(rows) is rows
    assert (task.pairs(rows)[0] == rows[:, task.item_positions]).all()
