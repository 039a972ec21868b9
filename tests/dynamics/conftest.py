"""A tiny prepared dataset with a repeated mixture and a control, shared by the dynamics tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from repeatlab.data.mixture import MixtureSpec, make_mixture
from repeatlab.data.prepare import PrepareConfig, prepare_dataset
from repeatlab.train import OptimConfig, RunConfig, TrainConfig

CONTEXT = 32
WORDS = "the quick brown fox jumps over a lazy dog while seven wizards quietly hex jolly vexing bards".split()


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def text_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``prepared/`` (byte tokens, context 32), ``repeated/`` (f=0.5, E=4), ``control/`` and ``finetune/``."""
    root = tmp_path_factory.mktemp("dynamics-data")
    corpus = root / "corpus"
    corpus.mkdir()
    for i in range(60):
        words = " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(40))
        (corpus / f"doc{i:03d}.txt").write_text(f"Doc {i}. {words}.", encoding="utf-8")
    prepare_dataset(PrepareConfig(source=str(corpus), tokenizer="byte", context=CONTEXT, test_fraction=0.1, seed=0),
                    root / "prepared")
    make_mixture(root / "prepared", MixtureSpec(total_tokens=48 * CONTEXT, repeated_fraction=0.5, repeated_epochs=4,
                                                seed=0), root / "repeated")
    make_mixture(root / "prepared", MixtureSpec(total_tokens=48 * CONTEXT, seed=1), root / "control")
    return root


def tiny_config(root: Path, *, mixture: str = "control", model: str = "attn-only-tiny-2l",
                **train: object) -> RunConfig:
    """12 steps of 4 sequences, evaluated at steps 0, 1, 3, 12 (and every 6)."""
    fields: dict[str, object] = dict(batch_tokens=4 * CONTEXT, n_log_evals=3, eval_every=6, eval_test_sequences=4,
                                     eval_repeated_sequences=4, checkpoint_every=6, device="cpu", cpu_threads=1,
                                     probe_sequences=4)
    fields.update(train)
    return RunConfig(dataset=str(root / "prepared"), mixture=str(root / mixture), model=model,
                     optim=OptimConfig(lr=3e-3, warmup_steps=2), train=TrainConfig(**fields))  # type: ignore[arg-type]
