"""Checkpoints are atomic, keep the last K, restore every state by name, and fail clearly when damaged."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from repeatlab.models.gpt import GPT, ModelConfig
from repeatlab.models.weights import load_model
from repeatlab.train.checkpoint import Checkpointer, ModelState, RNGState


class Counter:
    def __init__(self, value: int = 0) -> None:
        self.value = value

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value, "tensor": torch.full((3,), float(self.value))}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value = state["value"]
        assert torch.equal(state["tensor"], torch.full((3,), float(self.value)))


def tiny_model(seed: int) -> GPT:
    torch.manual_seed(seed)
    return GPT(ModelConfig(n_layer=1, d_model=16, n_head=2, vocab_size=11, context=8))


def test_save_keeps_the_last_k_and_restores_by_name(tmp_path: Path) -> None:
    ckpt = Checkpointer(tmp_path / "ck", every=2, keep=2, final_step=7)
    model = tiny_model(0)
    for step in range(1, 8):
        ckpt.maybe_save(step, lambda step=step: {"model": ModelState(model), "counter": Counter(step)})
    assert ckpt.steps() == [6, 7]  # saved at 2, 4, 6 and the final 7; the older ones deleted
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["step_0000006", "step_0000007"]
    other, counter = tiny_model(1), Counter()
    ckpt.load(6, {"model": ModelState(other), "counter": counter}, device=torch.device("cpu"))
    assert counter.value == 6
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, other.state_dict()[name]), name


def test_the_model_is_stored_as_a_weights_file_and_checked_on_load(tmp_path: Path) -> None:
    """``ModelState`` keeps the model in the final weights' format, so the layout of a checkpoint is unchanged."""
    ckpt = Checkpointer(tmp_path, every=1, keep=1, final_step=1)
    model = tiny_model(0)
    ckpt.save(1, {"model": ModelState(model), "c": Counter(1)})
    assert sorted(p.name for p in (tmp_path / "step_0000001").iterdir()) == ["c.pt", "meta.json", "model.safetensors"]
    stored = load_model(tmp_path / "step_0000001" / "model.safetensors", expected=model.config)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, stored.state_dict()[name]), name
    wider = GPT(ModelConfig(n_layer=1, d_model=32, n_head=2, vocab_size=11, context=8))
    with pytest.raises(ValueError, match="model config differs .*d_model: file has 16, expected 32"):
        ckpt.load(1, {"model": ModelState(wider)}, device=torch.device("cpu"))


def test_maybe_save_prepares_states_only_when_saving(tmp_path: Path) -> None:
    calls: list[int] = []
    ckpt = Checkpointer(tmp_path, every=3, keep=1, final_step=10)

    def states() -> dict[str, Counter]:
        calls.append(1)
        return {"c": Counter()}

    saved = [ckpt.maybe_save(step, states) for step in range(1, 5)]
    assert saved == [False, False, True, False] and len(calls) == 1


def test_leftover_temporary_directories_are_ignored_and_removed(tmp_path: Path) -> None:
    ckpt = Checkpointer(tmp_path, every=1, keep=3, final_step=5)
    ckpt.save(1, {"c": Counter(1)})
    (tmp_path / ".step_0000002.abc.tmp").mkdir()  # what a kill during a save leaves
    (tmp_path / ".step_0000000.deleting").mkdir()
    assert ckpt.latest() == 1
    Checkpointer(tmp_path, every=1, keep=3, final_step=5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_0000001"]


def test_damaged_checkpoint_fails_clearly(tmp_path: Path) -> None:
    ckpt = Checkpointer(tmp_path, every=1, keep=2, final_step=5)
    model = tiny_model(0)
    ckpt.save(1, {"model": ModelState(model), "c": Counter(1)})
    (tmp_path / "step_0000001" / "c.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="c.pt"):
        ckpt.load(1, {"model": ModelState(model), "c": Counter()}, device=torch.device("cpu"))
    (tmp_path / "step_0000001" / "meta.json").unlink()
    with pytest.raises(ValueError, match="incomplete or corrupt"):
        ckpt.load(1, {"model": ModelState(model)}, device=torch.device("cpu"))


def test_missing_state_in_checkpoint_fails_clearly(tmp_path: Path) -> None:
    ckpt = Checkpointer(tmp_path, every=1, keep=2, final_step=5)
    ckpt.save(1, {"c": Counter(1)})
    with pytest.raises(ValueError, match="lacks the state"):
        ckpt.load(1, {"c": Counter(), "optimizer": Counter()}, device=torch.device("cpu"))


def test_rng_state_round_trip(tmp_path: Path) -> None:
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    ckpt = Checkpointer(tmp_path, every=1, keep=1, final_step=1)
    ckpt.save(1, {"rng": RNGState()})
    expected = (random.random(), np.random.rand(), torch.rand(2))
    random.seed(2), np.random.seed(2), torch.manual_seed(2)
    ckpt.load(1, {"rng": RNGState()}, device=torch.device("cpu"))
    got = (random.random(), np.random.rand(), torch.rand(2))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])
