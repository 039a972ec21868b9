"""K models of one shape trained as one: their weights stacked along a new leading dimension and the training
objective mapped over it with ``torch.func.vmap``, so each kernel launch serves all K models.

    python benchmarks/stacked_models.py --size hern-2l --k 1 4 16 --device cuda --precision bf16

Each model has its own initialisation (seed ``seed + i``), its own batches, its own gradient-norm clip and,
because AdamW is elementwise, its own optimizer state inside one AdamW over the stacked tensors: K independent
runs, not one bigger model. On a GPU a small model leaves most of the chip idle, which stacking fills; on a CPU
the matrices of one model already keep the cores busy (issue 19 measured 0.58-0.72x at K = 8). This is a
benchmark, not yet a path of the trainer. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable

import torch
from torch import Tensor

from repeatlab.models.gpt import GPT, ModelConfig
from repeatlab.models.sizes import model_config
from repeatlab.train.objective import TrainingLoss

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


def stacked_step(shape: ModelConfig, k: int, *, batch_sequences: int, device: torch.device, dtype: torch.dtype,
                 seed: int = 0, lr: float = 1e-3, grad_clip: float = 1.0) -> Callable[[], Tensor]:
    """A function that runs one optimizer step of all ``k`` models on fresh random batches and returns their
    ``[k]`` losses (left on the device)."""
    objectives = []
    for i in range(k):
        torch.manual_seed(seed + i)
        objectives.append(TrainingLoss(GPT(shape)).to(device))
    params, buffers = torch.func.stack_module_state(objectives)  # each [k, ...], leaves that require grad
    template = copy.deepcopy(objectives[0]).to("meta")
    del objectives

    def loss_of_one(p: dict[str, Tensor], b: dict[str, Tensor], inputs: Tensor, targets: Tensor) -> Tensor:
        return torch.func.functional_call(template, (p, b), (inputs, targets))  # []

    losses_of_all = torch.vmap(loss_of_one)  # [k]
    decay = [p for p in params.values() if p.dim() >= 3]  # stacked matrices and embeddings, as build_optimizer
    no_decay = [p for p in params.values() if p.dim() < 3]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=lr, betas=(0.9, 0.95), fused=device.type == "cuda" or None)
    autocast = torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype != torch.float32)

    def step() -> Tensor:
        tokens = torch.randint(0, shape.vocab_size, (k, batch_sequences, shape.context + 1), device=device)
        with autocast:
            losses = losses_of_all(params, buffers, tokens[..., :-1], tokens[..., 1:])  # [k]
        losses.sum().backward()  # the models share no weights, so each gets the gradient of its own loss
        grads = [p.grad for p in params.values() if p.grad is not None]
        norms = torch.stack([g.flatten(1).square().sum(1) for g in grads]).sum(0).sqrt()  # [k]
        scale = (grad_clip / (norms + 1e-6)).clamp(max=1.0)  # [k], clip_grad_norm_ per model
        for g in grads:
            g.mul_(scale.view(-1, *[1] * (g.dim() - 1)))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return losses.detach()

    return step


def time_stacked(shape: ModelConfig, k: int, *, batch_sequences: int, device: torch.device, dtype: torch.dtype,
                 steps: int, warmup: int) -> float:
    """Aggregate tokens/s of ``k`` stacked models (all of them together)."""
    step = stacked_step(shape, k, batch_sequences=batch_sequences, device=device, dtype=dtype)
    for _ in range(warmup):
        step()
    _sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        losses = step()
    losses.cpu()  # waits for the device
    return steps * k * batch_sequences * shape.context / (time.perf_counter() - started)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="hern-2l")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--vocab", type=int, default=256)
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--batch-sequences", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="bf16", choices=list(PRECISIONS))
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    shape = model_config(args.size, vocab_size=args.vocab, context=args.context)
    device, dtype = torch.device(args.device), PRECISIONS[args.precision]
    single = None
    for k in args.k:
        tps = time_stacked(shape, k, batch_sequences=args.batch_sequences, device=device, dtype=dtype,
                           steps=args.steps, warmup=args.warmup)
        single = single or tps / k
        print(f"{args.size} K={k:3d} stacked: {tps:12,.0f} tok/s in total = {tps / single:6.2f} x one stacked model")


if __name__ == "__main__":
    main()
