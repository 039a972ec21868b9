"""End-to-end runs on a tiny dataset: layout, metrics, resume, idempotence and every bad-input error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from repeatlab.data.mixture import MixtureSpec, make_mixture
from repeatlab.data.prepare import PrepareConfig, prepare_dataset
from repeatlab.models.gpt import GPT
from repeatlab.models.weights import CorruptCheckpointError
from repeatlab.train import RunDirError, TrainingDiverged, load_run, train
from repeatlab.train.memory import BatchTooLargeError

from .conftest import CONTEXT, StopTraining, run_config, stop_at_eval

RECORD_KEYS = {"step", "tokens_seen", "train_loss", "test_loss", "repeated_loss", "lr", "wall_time_s",
               "train_time_s", "tokens_per_s"}


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name


@pytest.fixture(scope="module")
def finished(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """One uninterrupted reference run."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    events: list[dict[str, Any]] = []
    summary = train(run_config(data_dir), run_dir, progress=events.append)
    assert [e["event"] for e in events][0] == "start" and events[-1]["event"] == "done"
    return run_dir, summary


def test_run_directory_layout_and_records(finished: tuple[Path, dict[str, Any]]) -> None:
    run_dir, summary = finished
    assert {p.name for p in run_dir.iterdir()} == {"config.json", "metrics.jsonl", "checkpoints", "model.safetensors",
                                                   "summary.json"}
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step_0000008", "step_0000012"]
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 1, 2, 5, 12]  # 0, log-spaced, final
    for r in records:
        assert set(r) == RECORD_KEYS
        assert r["tokens_seen"] == r["step"] * 8 * CONTEXT
    assert records[0]["train_loss"] is None and records[0]["tokens_per_s"] is None
    assert all(r["tokens_per_s"] > 0 for r in records[1:])
    assert records[-1]["test_loss"] < records[0]["test_loss"] - 0.5  # it learns
    assert summary["steps"] == 12 and summary["tokens"] == 12 * 8 * CONTEXT
    assert summary["test_loss"] == records[-1]["test_loss"]
    assert summary["n_params_non_embedding"] == 12 * 1 * 64**2
    stored = json.loads((run_dir / "config.json").read_text())
    assert Path(stored["dataset"]).is_absolute()
    # Both files carry their schema version (``repeatlab.records``); the returned summary is the content.
    assert stored["schema"] == 1 and json.loads((run_dir / "summary.json").read_text()) == {**summary, "schema": 1}


def test_finished_run_returns_its_summary_without_training(finished: tuple[Path, dict[str, Any]],
                                                           data_dir: Path) -> None:
    run_dir, summary = finished
    before = (run_dir / "metrics.jsonl").read_bytes()
    assert train(run_config(data_dir), run_dir) == summary
    assert (run_dir / "metrics.jsonl").read_bytes() == before


def test_resume_after_interruption_is_exact(finished: tuple[Path, dict[str, Any]], data_dir: Path,
                                            tmp_path: Path) -> None:
    """Stop after the eval of step 5 (past checkpoint 4, record 5 written), then resume."""


    run_dir = tmp_path / "run"
    with pytest.raises(StopTraining):
        train(run_config(data_dir), run_dir, progress=stop_at_eval(5))
    assert [r["step"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())][-1] == 5
    events: list[dict[str, Any]] = []
    train(run_config(data_dir), run_dir, progress=events.append)
    assert events[0] == {**events[0], "event": "resume", "step": 4}
    assert_same_weights(run_dir / "model.safetensors", finished[0] / "model.safetensors")
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    reference = [json.loads(line) for line in (finished[0] / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [r["step"] for r in reference]  # no duplicate record for step 5
    for ours, theirs in zip(records, reference):
        for key in ("test_loss", "repeated_loss", "train_loss", "lr", "tokens_seen"):
            assert ours[key] == theirs[key], (ours["step"], key)


def test_gradient_accumulation_matches_one_pass(finished: tuple[Path, dict[str, Any]], data_dir: Path,
                                                tmp_path: Path) -> None:
    summary = train(run_config(data_dir, micro_batch_tokens=2 * CONTEXT), tmp_path / "run")
    ref = weights(finished[0] / "model.safetensors")
    got = weights(tmp_path / "run" / "model.safetensors")
    for name in ref:
        torch.testing.assert_close(got[name], ref[name], rtol=1e-4, atol=1e-4)
    assert summary["test_loss"] == pytest.approx(finished[1]["test_loss"], rel=1e-4)


def test_control_has_no_repeated_loss(data_dir: Path, tmp_path: Path) -> None:
    summary = train(run_config(data_dir, mixture="control", n_log_evals=0), tmp_path / "run")
    assert summary["repeated_loss"] is None and summary["mixture"]["kind"] == "control"


def test_different_config_is_refused_and_untouched(finished: tuple[Path, dict[str, Any]], data_dir: Path) -> None:
    run_dir = finished[0]
    before = {p: p.read_bytes() for p in run_dir.glob("*.json*")}
    with pytest.raises(RunDirError, match=r"different config \(train.seed: stored 0, asked 1\)"):
        train(run_config(data_dir, seed=1), run_dir)
    assert {p: p.read_bytes() for p in run_dir.glob("*.json*")} == before


def test_foreign_directory_is_refused(data_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="not a run directory"):
        train(run_config(data_dir), tmp_path)


def test_missing_mixture_is_a_clear_error(data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="is not a mixture"):
        train(run_config(data_dir, mixture="nowhere"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_mixture_of_another_dataset_is_refused(data_dir: Path, tmp_path: Path) -> None:
    other = prepare_dataset(PrepareConfig(source=str(data_dir / "corpus"), tokenizer="byte", context=CONTEXT,
                                          test_fraction=0.1, seed=5), tmp_path / "other")
    make_mixture(other.path, MixtureSpec(total_tokens=96 * CONTEXT), tmp_path / "other-mix")
    config = run_config(data_dir)
    config = type(config)(**{**config.__dict__, "mixture": str(tmp_path / "other-mix")})
    with pytest.raises(ValueError, match="built for another prepared dataset"):
        train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_batch_that_does_not_fit_names_the_largest_that_does(data_dir: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from repeatlab.train import memory

    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 2_000_000)
    with pytest.raises(BatchTooLargeError, match=r"largest micro-batch that fits is \d sequences: set "
                                                 r"train.micro_batch_tokens=\d+"):
        train(run_config(data_dir), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(data_dir: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    forward = GPT.forward
    calls = {"train": 0}

    def poisoned(self: GPT, tokens: torch.Tensor) -> torch.Tensor:
        logits = forward(self, tokens)
        if self.training:
            calls["train"] += 1
            if calls["train"] >= 7:  # the 7th update (batch of step 6)
                return logits * float("nan")
        return logits

    monkeypatch.setattr(GPT, "forward", poisoned)
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match="became nan at step 7"):
        train(run_config(data_dir, checkpoint_every=2, n_log_evals=0, eval_every=None), run_dir)
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step_0000004", "step_0000006"]
    assert not (run_dir / "summary.json").exists() and not (run_dir / "model.safetensors").exists()
    loaded = load_run(run_dir, checkpoint="latest")
    assert all(torch.isfinite(t).all() for t in loaded.model.state_dict().values())


def test_load_run(finished: tuple[Path, dict[str, Any]]) -> None:
    run_dir, summary = finished
    run = load_run(run_dir)
    assert run.config.model == "tiny-1l" and run.summary == summary
    assert [r["step"] for r in run.metrics] == [0, 1, 2, 5, 12]
    assert run.model.config.context == CONTEXT
    final = weights(run_dir / "model.safetensors")
    assert all(torch.equal(final[name], t) for name, t in run.model.state_dict().items() if name in final)
    at_8 = load_run(run_dir, checkpoint="step_0000008").model
    assert not torch.equal(at_8.wte.weight, run.model.wte.weight)


def test_load_run_errors(finished: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        load_run(tmp_path)
    with pytest.raises(FileNotFoundError, match="no checkpoint 'step_0000003'.*step_0000008, step_0000012"):
        load_run(finished[0], checkpoint="step_0000003")
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("config.json", "metrics.jsonl"):
        (copy / name).write_bytes((finished[0] / name).read_bytes())
    with pytest.raises(FileNotFoundError, match="has not finished.*checkpoint='latest'"):
        load_run(copy)
    data = (finished[0] / "model.safetensors").read_bytes()
    (copy / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptCheckpointError):
        load_run(copy)
