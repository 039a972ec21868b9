"""Fine-tuning from another run: weights loaded bit for bit, a fresh optimizer, exact resume, clear refusals."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from repeatlab.data.mixture import load_mixture
from repeatlab.data.prepared import load_prepared
from repeatlab.models.weights import CheckpointMismatchError
from repeatlab.train import RunDirError, init_from_weights, train
from repeatlab.train.distributed import world
from repeatlab.train.run import check_run_dir
from repeatlab.train.trainer import Trainer

from .conftest import StopTraining, run_config, stop_at_eval


@pytest.fixture(scope="module")
def source(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished pre-training run on the repeated mixture (checkpoints at steps 8 and 12)."""
    run_dir = tmp_path_factory.mktemp("source") / "run"
    train(run_config(data_dir), run_dir)
    return run_dir


def finetune(data_dir: Path, source: Path, **fields: Any) -> Any:
    config = run_config(data_dir, mixture="control")
    return replace(config, optim=replace(config.optim, lr=1.5e-3, warmup_steps=1), init_from=str(source), **fields)


def test_weights_are_loaded_bitwise_and_the_optimizer_is_fresh(data_dir: Path, source: Path) -> None:
    config = finetune(data_dir, source).resolved()
    dataset, mixture = load_prepared(config.dataset), load_mixture(config.mixture)
    with world(config.train) as w:
        trainer = Trainer(config, w, dataset=dataset, mixture=mixture, init_state=init_from_weights(config, dataset))
    stored = load_file(str(source / "model.safetensors"))
    state = trainer.model.state_dict()
    assert stored.keys() <= state.keys()
    assert all(torch.equal(state[name], tensor) for name, tensor in stored.items())
    assert trainer.optimizer.state_dict()["state"] == {} and trainer.step == 0


def test_finetuning_starts_where_pretraining_ended_and_resumes_exactly(data_dir: Path, source: Path,
                                                                       tmp_path: Path) -> None:
    config = finetune(data_dir, source)
    summary = train(config, tmp_path / "reference")
    records = [json.loads(line) for line in (tmp_path / "reference" / "metrics.jsonl").read_text().splitlines()]
    pretrained = [json.loads(line) for line in (source / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["test_loss"] == pretrained[-1]["test_loss"]  # same weights, same evaluation sample
    assert summary["init_from"] == {"run_dir": str(source.resolve()), "checkpoint": "final"}
    assert summary["test_loss"] < pretrained[-1]["test_loss"]


    with pytest.raises(StopTraining):
        train(config, tmp_path / "run", progress=stop_at_eval(5))
    train(config, tmp_path / "run")
    ours, theirs = (load_file(str(tmp_path / d / "model.safetensors")) for d in ("run", "reference"))
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


def test_a_checkpoint_can_be_the_starting_point(data_dir: Path, source: Path, tmp_path: Path) -> None:
    config = finetune(data_dir, source, init_checkpoint="step_0000008")
    first = [json.loads(line) for line in (source / "metrics.jsonl").read_text().splitlines()]
    train(config, tmp_path / "run")
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["test_loss"] not in (first[-1]["test_loss"], first[0]["test_loss"])
    with pytest.raises(ValueError, match="init_checkpoint"):
        finetune(data_dir, source, init_checkpoint="latest")


def test_mismatched_architecture_fails_clearly_before_writing(data_dir: Path, source: Path, tmp_path: Path) -> None:
    config = replace(finetune(data_dir, source), model="tiny-2l")
    with pytest.raises(CheckpointMismatchError, match=r"cannot initialise from .*n_layer: file has 1, expected 2.*"
                                                      r"source's model size \(tiny-1l\)"):
        train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_another_tokenizer_or_a_missing_source_is_refused(data_dir: Path, source: Path, tmp_path: Path) -> None:
    other = tmp_path / "prepared"
    shutil.copytree(data_dir / "prepared", other)
    tokenizer = json.loads((other / "tokenizer.json").read_text())
    (other / "tokenizer.json").write_text(json.dumps(tokenizer, indent=1))  # same vocabulary, other file
    config = replace(finetune(data_dir, source), dataset=str(other))
    with pytest.raises(ValueError, match="uses another tokenizer"):
        init_from_weights(config.resolved(), load_prepared(other))
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        train(replace(finetune(data_dir, source), init_from=str(tmp_path / "nowhere")), tmp_path / "run")


def test_the_init_is_part_of_the_run_identity(data_dir: Path, source: Path, tmp_path: Path) -> None:
    train(run_config(data_dir, mixture="control"), tmp_path / "scratch")
    with pytest.raises(RunDirError, match="init_from: stored None"):
        check_run_dir(tmp_path / "scratch", finetune(data_dir, source).resolved())


def test_configs_stored_before_the_new_fields_still_resume(data_dir: Path, source: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "old"
    shutil.copytree(source, run_dir)
    stored = json.loads((run_dir / "config.json").read_text())
    for key in ("init_from", "init_checkpoint"):
        del stored[key]
    for key in ("probe_metrics", "probe_sequences", "extra_evals", "interventions"):
        del stored["train"][key]
    (run_dir / "config.json").write_text(json.dumps(stored))
    check_run_dir(run_dir, run_config(data_dir).resolved())  # no error
    with pytest.raises(RunDirError, match="train.seed"):
        check_run_dir(run_dir, run_config(data_dir, seed=3).resolved())
