"""A tiny corpus and tiny grids: runs of a few steps of 1-layer models on byte tokens, context 16."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from repeatlab.data.prepare import PrepareConfig
from repeatlab.io import read_jsonl
from repeatlab.probes.config import ProbeConfig
from repeatlab.sweeps.grid import GridConfig, ResourcesConfig
from repeatlab.sweeps.state import ATTEMPTS_FILE
from repeatlab.train.config import OptimConfig, TrainConfig

CONTEXT = 16
WORDS = "the quick brown fox jumps over a lazy dog while seven wizards quietly hex jolly vexing bards".split()


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """80 distinct pseudo-English documents (about 1,300 training sequences of 16 byte tokens)."""
    folder = tmp_path_factory.mktemp("sweep-corpus")
    for i in range(80):
        body = " ".join(WORDS[(i * 7 + j * 3 + j * j) % len(WORDS)] for j in range(50))
        (folder / f"doc{i:03d}.txt").write_text(f"Document {i}. {body}.", encoding="utf-8")
    return folder


def tiny_probes() -> ProbeConfig:
    """Probes that fit a 16-token context, on a handful of sequences."""
    return ProbeConfig(probes=("induction", "copying", "memorisation"), n_random_sequences=4, induction_tokens=7,
                       n_test_sequences=4, n_copies=2, n_copy_paragraphs=2, n_memorisation_sequences=4,
                       memorisation_prefix_tokens=8, memorisation_continuation_tokens=8)


def tiny_grid(corpus: Path, **changes: Any) -> GridConfig:
    """Two 1-layer sizes x (control + f=0.5, E=4): 4 runs of 8 steps (64 sequences, batches of 8)."""
    grid = GridConfig(
        name="tiny-test",
        sizes=("tiny-1l", "attn-only-tiny-1l"),
        total_tokens=64 * CONTEXT,
        repeated_fractions=(0.5,),
        repeated_epochs=(4,),
        data=PrepareConfig(source=str(corpus), tokenizer="byte", context=CONTEXT, test_fraction=0.1),
        optim=OptimConfig(lr=3e-3, warmup_steps=2),
        train=TrainConfig(batch_tokens=8 * CONTEXT, n_log_evals=2, eval_test_sequences=8, eval_repeated_sequences=8,
                          checkpoint_every=2, device="cpu"),
        probes=None,
        resources=ResourcesConfig(local_workers=2, max_retries=2),
    )
    return replace(grid, **changes)


def attempts(run_dir: Path) -> list[dict[str, Any]]:
    return read_jsonl(run_dir / ATTEMPTS_FILE)


def metric_steps(run_dir: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line]
