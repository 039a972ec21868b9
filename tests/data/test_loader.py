from __future__ import annotations

import numpy as np
import pytest
import torch

from repeatlab.data import loader as loader_module  # a module import keeps pytest from collecting test_batches
from repeatlab.data.loader import MixtureLoader
from repeatlab.data.mixture import MixtureSpec, build_mixture
from repeatlab.data.prepared import PreparedDataset


@pytest.fixture()
def mixture(prepared: PreparedDataset):
    spec = MixtureSpec(total_tokens=403 * prepared.context, repeated_fraction=0.2, repeated_epochs=8, seed=5)
    return build_mixture(prepared, spec)


def test_batches_follow_the_order(prepared: PreparedDataset, mixture) -> None:
    loader = MixtureLoader(prepared, mixture, batch_size=10)
    assert loader.n_steps == 40  # the last partial batch is dropped
    seen = np.concatenate([b.sequence_ids for b in loader])
    np.testing.assert_array_equal(seen, mixture.order[:400])
    rows = prepared.sequences("train")
    batch = loader.batch(3)
    np.testing.assert_array_equal(batch.inputs.numpy(), rows[batch.sequence_ids][:, :-1])
    np.testing.assert_array_equal(batch.targets.numpy(), rows[batch.sequence_ids][:, 1:])
    assert batch.inputs.dtype == torch.int64
    np.testing.assert_array_equal(batch.is_repeat.numpy(), np.isin(batch.sequence_ids, mixture.repeated_ids))


def test_resume_from_any_step_without_replay(prepared: PreparedDataset, mixture) -> None:
    full = [b.sequence_ids for b in MixtureLoader(prepared, mixture, batch_size=7)]
    first = MixtureLoader(prepared, mixture, batch_size=7)
    it = iter(first)
    for _ in range(13):
        next(it)
    resumed = MixtureLoader(prepared, mixture, batch_size=7)
    resumed.load_state_dict(first.state_dict())
    rest = [b.sequence_ids for b in resumed]
    assert len(rest) == len(full) - 13
    for a, b in zip(full[13:], rest, strict=True):
        np.testing.assert_array_equal(a, b)
    other = MixtureLoader(prepared, mixture, batch_size=8)
    with pytest.raises(ValueError, match="resume with the original settings"):
        other.load_state_dict(first.state_dict())


def test_eval_batches(prepared: PreparedDataset, mixture) -> None:
    rep = list(loader_module.repeated_subset_batches(prepared, mixture, batch_size=4, max_sequences=6))
    ids = np.concatenate([b.sequence_ids for b in rep])
    assert len(ids) == 6 and np.isin(ids, mixture.repeated_ids).all() and all(b.is_repeat.all() for b in rep)
    test = list(loader_module.test_batches(prepared, batch_size=5, max_sequences=10_000))
    assert sum(len(b.sequence_ids) for b in test) == prepared.n_sequences("test")
    again = list(loader_module.test_batches(prepared, batch_size=5, max_sequences=10_000))
    assert all(torch.equal(a.inputs, b.inputs) for a, b in zip(test, again, strict=True))


def test_loader_rejects_mismatched_mixture(prepared: PreparedDataset, mixture) -> None:
    other = type(mixture)(order=mixture.order, repeated_ids=mixture.repeated_ids,
                          manifest={**mixture.manifest, "dataset_fingerprint": "another"})
    with pytest.raises(ValueError, match="another prepared dataset"):
        MixtureLoader(prepared, other, batch_size=4)
    with pytest.raises(ValueError, match="batch_size"):
        MixtureLoader(prepared, mixture, batch_size=0)
