"""A tiny prepared dataset, a repeated mixture and a control over it, and small run configs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from repeatlab.data.mixture import MixtureSpec, make_mixture
from repeatlab.data.prepare import PrepareConfig, prepare_dataset
from repeatlab.train import OptimConfig, RunConfig, TrainConfig

CONTEXT = 16
WORDS = "the quick brown fox jumps over a lazy dog while seven wizards quietly hex jolly vexing bards".split()


def make_documents(n: int, words_per_doc: int = 30) -> list[str]:
    return [
        f"Doc {i}. " + " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(words_per_doc)) + "."
        for i in range(n)
    ]


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``prepared/`` (byte tokens, context 16), ``repeated/`` (f=0.5, E=4) and ``control/`` mixtures."""
    root = tmp_path_factory.mktemp("train-data")
    corpus = root / "corpus"
    corpus.mkdir()
    for i, doc in enumerate(make_documents(40)):
        (corpus / f"doc{i:03d}.txt").write_text(doc, encoding="utf-8")
    prepare_dataset(
        PrepareConfig(source=str(corpus), tokenizer="byte", context=CONTEXT, test_fraction=0.1, seed=0),
        root / "prepared",
    )
    make_mixture(root / "prepared", MixtureSpec(total_tokens=96 * CONTEXT, repeated_fraction=0.5,
                                                repeated_epochs=4, seed=0), root / "repeated")
    make_mixture(root / "prepared", MixtureSpec(total_tokens=96 * CONTEXT, seed=1), root / "control")
    return root


def run_config(data_dir: Path, *, mixture: str = "repeated", **train: object) -> RunConfig:
    """A 1-layer model trained on 8-sequence batches: 12 steps over the 96-sequence mixtures."""
    fields: dict[str, object] = dict(batch_tokens=8 * CONTEXT, n_log_evals=4, eval_every=None,
                                     eval_test_sequences=8, eval_repeated_sequences=8, checkpoint_every=4,
                                     keep_checkpoints=2, device="cpu", cpu_threads=1)
    fields.update(train)
    return RunConfig(
        dataset=str(data_dir / "prepared"),
        mixture=str(data_dir / mixture),
        model="tiny-1l",
        optim=OptimConfig(lr=3e-3, warmup_steps=2),
        train=TrainConfig(**fields),  # type: ignore[arg-type]
    )


class StopTraining(Exception):
    """Raised from a progress callback to interrupt a run in-process, where a crash would."""


def stop_at_eval(step: int) -> Callable[[dict[str, Any]], None]:
    """A progress callback that interrupts training right after the evaluation of ``step``."""

    def progress(event: dict[str, Any]) -> None:
        if event["event"] == "eval" and event["step"] == step:
            raise StopTraining

    return progress
