"""benchmarks/stacked_models.py: K models stacked with torch.func train exactly as K separate runs would
(own initialisation, own batches, own gradient clip, own AdamW state), so its speed figures are for real runs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from repeatlab.models.gpt import GPT, ModelConfig
from repeatlab.train.objective import TrainingLoss

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "stacked_models.py"


def load_benchmark(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("stacked_models", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "stacked_models", module)
    spec.loader.exec_module(module)
    return module


def test_stacked_models_train_like_separate_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    shape = ModelConfig(n_layer=1, d_model=32, n_head=2, vocab_size=64, context=16)
    k, steps, lr = 3, 3, 3e-2  # a large rate, so that a clip or decay applied to the wrong model would show
    step = load_benchmark(monkeypatch).stacked_step(shape, k, batch_sequences=4, device=torch.device("cpu"),
                                                    dtype=torch.float32, lr=lr, grad_clip=0.5)
    torch.manual_seed(123)
    batches = [torch.randint(0, shape.vocab_size, (k, 4, shape.context + 1)) for _ in range(steps)]
    torch.manual_seed(123)  # the stacked step draws the same batches
    stacked = torch.stack([step() for _ in range(steps)], dim=1)  # [k, steps]

    for i in range(k):
        torch.manual_seed(i)
        objective = TrainingLoss(GPT(shape))
        params = list(objective.parameters())
        optimizer = torch.optim.AdamW([{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
                                       {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
                                      lr=lr, betas=(0.9, 0.95))
        for s in range(steps):
            loss = objective(batches[s][i, :, :-1], batches[s][i, :, 1:])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 0.5)
            optimizer.step()
            optimizer.zero_grad()
            torch.testing.assert_close(stacked[i, s], loss.detach(), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(stacked[:, 0], stacked[:, -1])  # the models did change
