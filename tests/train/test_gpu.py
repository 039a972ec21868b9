"""CUDA-only paths: bf16 autocast, fused AdamW, torch.compile and the out-of-memory probe.

Skipped on CPU (see tests/QUARANTINES.md); they run wherever a CUDA GPU is present.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from repeatlab.models.gpt import GPT, ModelConfig
from repeatlab.train import train
from repeatlab.train.config import OptimConfig, TrainConfig
from repeatlab.train.distributed import World
from repeatlab.train.memory import BatchTooLargeError, check_memory
from repeatlab.train.plan import plan_batches
from repeatlab.train.trainer import build_optimizer

from .conftest import run_config

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (see tests/QUARANTINES.md)"),
]


@pytest.mark.parametrize("compile", [False, True])
def test_bf16_fused_adamw_run(data_dir: Path, tmp_path: Path, compile: bool) -> None:
    summary = train(run_config(data_dir, device="cuda", precision="auto", compile=compile), tmp_path / "run")
    assert summary["device"] == "cuda" and summary["precision"] == "bfloat16"
    assert math.isfinite(summary["test_loss"]) and summary["test_loss"] < 5.0


def test_fused_adamw_on_cuda() -> None:
    model = GPT(ModelConfig(n_layer=1, d_model=32, n_head=2, vocab_size=11, context=8)).cuda()
    optimizer = build_optimizer(model, OptimConfig(), torch.device("cuda"))
    assert optimizer.defaults["fused"] is True


def test_out_of_memory_probe_reports_the_largest_micro_batch() -> None:
    config = ModelConfig(n_layer=2, d_model=256, n_head=4, vocab_size=50257, context=1024)
    model = GPT(config).cuda()
    free, _ = torch.cuda.mem_get_info()
    # Logits alone take 2 bytes * V * T per sequence in bf16; ask for a batch several times the free memory.
    too_many = 2 ** math.ceil(math.log2(4 * free / (2 * config.vocab_size * config.context)))
    plan = plan_batches(TrainConfig(batch_tokens=too_many * 1024), context=1024, world_size=1, n_sequences=too_many)
    world = World(0, 1, 0, torch.device("cuda", torch.cuda.current_device()), torch.bfloat16)
    with pytest.raises(BatchTooLargeError, match=r"largest micro-batch that fits is \d+ sequences"):
        check_memory(model, plan, world)
