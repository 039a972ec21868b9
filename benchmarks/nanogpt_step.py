"""repeatlab's training step against nanoGPT's, in one process, timed in interleaved rounds.

    python benchmarks/nanogpt_step.py /path/to/nanoGPT                 # tiny-2l shape, 1 thread, 30 rounds
    python benchmarks/nanogpt_step.py /path/to/nanoGPT --precisions fp32 bf16 --rounds 20

The nanoGPT checkout (https://github.com/karpathy/nanoGPT) is given by path and only its ``model.py`` is
imported; its code stays out of this repository. nanoGPT's step is its ``train.py`` loop restated here for one
process: ``get_batch`` from a uint16 memmap, ``model(X, Y)`` (the loss inside the model), backward, clip 1.0,
AdamW (its ``configure_optimizers``), ``zero_grad``, the learning rate set on every group and ``loss.item()``
every step (``log_interval = 1``); on CPU nanoGPT runs float32 without autocast and its gradient scaler is off.
repeatlab's step is ``Trainer.train_step`` with its real loader on a synthetic prepared dataset, eager and with
``train.compile`` (the model and its cross-entropy compiled as one unit), optionally under bf16 autocast.

Same shape on both sides: a 2-layer, d_model 64, 2-head model (tiny-2l), vocabulary 2048, context 128, 16
sequences a step. Each round times every variant for ``--steps`` steps, in turn, so load from other processes
hits all of them alike; ratios are taken within a round against nanoGPT eager, and the median and
interquartile range over rounds are printed. MFU = FLOPs/s (``train_throughput.flops_per_token``) over the
fp32 peak measured by a 1024^3 matmul on the same threads (the best of one short timing per round); the nominal
peak (cores x clock x 64 FLOPs/cycle) is printed beside it. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from repeatlab.models.sizes import model_config
from repeatlab.train.config import OptimConfig, RunConfig, TrainConfig
from repeatlab.train.distributed import World
from train_throughput import flops_per_token, matmul_peak_flops, peak_flops, synthetic_data, trainer_step

SIZE, VOCAB, CONTEXT, SEQUENCES = "tiny-2l", 2048, 128, 16
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


def load_nanogpt(checkout: Path) -> ModuleType:
    """nanoGPT's ``model.py`` from a checkout, imported under its own name."""
    path = checkout / "model.py"
    if not path.is_file():
        raise SystemExit(f"no model.py in {checkout}: give the path of a nanoGPT checkout "
                         f"(git clone https://github.com/karpathy/nanoGPT)")
    spec = importlib.util.spec_from_file_location("nanogpt_model", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nanogpt_step(nanogpt: ModuleType, train_bin: Path, *, compile: bool) -> Callable[[], None]:
    """One iteration of nanoGPT's ``train.py`` loop (gradient_accumulation_steps = 1) on CPU."""
    torch.manual_seed(0)
    shape = model_config(SIZE, vocab_size=VOCAB, context=CONTEXT)
    config = nanogpt.GPTConfig(n_layer=shape.n_layer, n_head=shape.n_head, n_embd=shape.d_model, block_size=CONTEXT,
                               vocab_size=VOCAB, dropout=0.0, bias=True)
    model = nanogpt.GPT(config)
    optimizer = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95), "cpu")
    module = torch.compile(model) if compile else model

    def get_batch() -> tuple[torch.Tensor, torch.Tensor]:
        data = np.memmap(train_bin, dtype=np.uint16, mode="r")
        ix = torch.randint(len(data) - CONTEXT, (SEQUENCES,))
        x = torch.stack([torch.from_numpy((data[i : i + CONTEXT]).astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy((data[i + 1 : i + 1 + CONTEXT]).astype(np.int64)) for i in ix])
        return x, y

    batch = get_batch()

    def step() -> None:
        nonlocal batch
        for group in optimizer.param_groups:
            group["lr"] = 1e-3
        _, loss = module(*batch)
        batch = get_batch()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()

    return step


def repeatlab_step(base: RunConfig, *, compile: bool, precision: str) -> Callable[[], None]:
    config = replace(base, train=replace(base.train, compile=compile, precision=precision))
    return trainer_step(config, World(0, 1, 0, torch.device("cpu"), PRECISIONS[precision]))


def quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return float(q1), float(median), float(q3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("nanogpt", type=Path, help="path of a nanoGPT checkout")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--steps", type=int, default=4, help="steps per variant per round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per variant (compilation happens here)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precisions", nargs="+", default=["fp32"], choices=list(PRECISIONS),
                        help="precisions of repeatlab's compiled step (nanoGPT runs float32 on CPU)")
    parser.add_argument("--no-compile", action="store_true", help="eager steps only")
    args = parser.parse_args()
    nanogpt = load_nanogpt(args.nanogpt)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # process-wide, as repeatlab's training does: both sides alike

    batch_tokens = SEQUENCES * CONTEXT
    with tempfile.TemporaryDirectory(prefix="repeatlab-nanogpt-") as tmp:
        n_tokens = 64 * batch_tokens + CONTEXT + 1
        dataset, mixture = synthetic_data(Path(tmp), vocab=VOCAB, context=CONTEXT, n_tokens=n_tokens)
        base = RunConfig(dataset=str(dataset), mixture=str(mixture), model=SIZE,
                         optim=OptimConfig(lr=1e-3, warmup_steps=0, weight_decay=0.1, beta1=0.9, beta2=0.95),
                         train=TrainConfig(batch_tokens=batch_tokens, n_log_evals=0, eval_test_sequences=1,
                                           device="cpu", cpu_threads=args.threads))  # fmt: skip
        variants: dict[str, Callable[[], None]] = {
            "nanoGPT eager": nanogpt_step(nanogpt, dataset / "train.bin", compile=False),
            "repeatlab eager": repeatlab_step(base, compile=False, precision="fp32"),
        }
        if not args.no_compile:
            variants["nanoGPT compiled"] = nanogpt_step(nanogpt, dataset / "train.bin", compile=True)
            for precision in args.precisions:
                variants[f"repeatlab compiled {precision}"] = repeatlab_step(base, compile=True, precision=precision)
        for name, step in variants.items():
            started = time.perf_counter()
            for _ in range(args.warmup):
                step()
            print(f"warm-up {name}: {time.perf_counter() - started:.1f} s", flush=True)

        tokens_per_s: dict[str, list[float]] = {name: [] for name in variants}
        peak = 0.0
        for _ in range(args.rounds):
            # The peak is the best of short matmul timings spread over the rounds, so that load does not lower it.
            peak = max(peak, matmul_peak_flops(torch.device("cpu"), torch.float32, size=1024, seconds=0.1))
            for name, step in variants.items():
                started = time.perf_counter()
                for _ in range(args.steps):
                    step()
                tokens_per_s[name].append(args.steps * batch_tokens / (time.perf_counter() - started))

    nominal, how = peak_flops(torch.device("cpu"), torch.float32, args.threads)
    fpt = flops_per_token(model_config(SIZE, vocab_size=VOCAB, context=CONTEXT))
    load = os.getloadavg()[0]
    print(f"torch {torch.__version__}, {args.threads} thread(s), {SIZE} vocab {VOCAB} context {CONTEXT}, "
          f"{SEQUENCES} sequences/step, {args.rounds} rounds x {args.steps} steps, load average {load:.1f}; "
          f"{fpt / 1e6:.2f} MFLOP/token; fp32 peak measured by a 1024^3 matmul {peak / 1e9:.0f} GFLOP/s, nominal "
          f"{(nominal or 0) / 1e9:.0f} GFLOP/s ({how})")
    reference = tokens_per_s["nanoGPT eager"]
    for name, values in tokens_per_s.items():
        q1, median, q3 = quartiles(values)
        r1, ratio, r3 = quartiles([v / ref for v, ref in zip(values, reference)])
        print(f"{name:>24}: {median:8,.0f} tok/s (IQR {q1:,.0f}-{q3:,.0f}), {100 * median * fpt / peak:4.1f}% of "
              f"the fp32 peak | x nanoGPT eager {ratio:.2f} (IQR {r1:.2f}-{r3:.2f})")


if __name__ == "__main__":
    main()
