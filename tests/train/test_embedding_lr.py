"""``optim.embedding_lr_scale``: the embeddings' own learning rate, exact resume, and run ids kept for old configs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from repeatlab.config import config_hash, to_dict
from repeatlab.models.gpt import GPT
from repeatlab.models.sizes import model_config
from repeatlab.sweeps.grid import expand_grid, load_grid
from repeatlab.train import OptimConfig, train
from repeatlab.train.trainer import build_optimizer

from .conftest import StopTraining, run_config, stop_at_eval


def test_run_ids_of_configs_without_the_option_are_unchanged() -> None:
    # Computed before embedding_lr_scale existed; a run directory must keep its id when fields are added.
    specs = expand_grid(load_grid("cpu-tiny"))
    assert (specs[0].run_id, specs[-1].run_id) == ("73976bfddf82", "d9ab43004fb0")
    assert config_hash(OptimConfig(embedding_lr_scale=0.1)) != config_hash(OptimConfig())
    assert to_dict(OptimConfig())["embedding_lr_scale"] == 1.0  # stored in config.json all the same


def test_embeddings_get_their_own_scaled_group_only_when_asked() -> None:
    model = GPT(model_config("tiny-1l", vocab_size=64, context=16))
    assert len(build_optimizer(model, OptimConfig(), torch.device("cpu")).param_groups) == 2
    groups = build_optimizer(model, OptimConfig(embedding_lr_scale=0.1), torch.device("cpu")).param_groups
    scaled = [g for g in groups if g.get("lr_scale") == 0.1]
    assert len(scaled) == 1 and {id(p) for p in scaled[0]["params"]} == {id(model.wte.weight), id(model.wpe.weight)}
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    with pytest.raises(ValueError, match="embedding_lr_scale must be > 0"):
        OptimConfig(embedding_lr_scale=0.0)


def _movement(run_dir: Path, name: str) -> float:
    """How far a weight moved between the step-8 checkpoint and the end of the 12-step run."""
    before = load_file(str(run_dir / "checkpoints" / "step_0000008" / "model.safetensors"))[name]
    return float((load_file(str(run_dir / "model.safetensors"))[name] - before).norm())


def test_a_small_scale_slows_the_embeddings_only_and_resumes_exactly(data_dir: Path, tmp_path: Path) -> None:
    base = run_config(data_dir)
    slow = replace(base, optim=replace(base.optim, embedding_lr_scale=0.01))
    train(base, tmp_path / "base")
    train(slow, tmp_path / "slow")
    # Adam's step is proportional to the learning rate: the embeddings move ~100x less, other weights do not.
    assert _movement(tmp_path / "slow", "wte.weight") < 0.05 * _movement(tmp_path / "base", "wte.weight")
    matrix = "blocks.0.attn.c_attn.weight"
    assert _movement(tmp_path / "slow", matrix) > 0.3 * _movement(tmp_path / "base", matrix)

    with pytest.raises(StopTraining):
        train(slow, tmp_path / "resumed", progress=stop_at_eval(5))
    train(slow, tmp_path / "resumed")
    resumed, whole = (load_file(str(tmp_path / d / "model.safetensors")) for d in ("resumed", "slow"))
    assert all(torch.equal(resumed[k], whole[k]) for k in whole)
