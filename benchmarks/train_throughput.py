"""Training throughput: tokens/s and model FLOPs utilisation (MFU) of the repeatlab trainer, next to a plain
PyTorch loop training the same model on the same batches in the same process, and (on CUDA) K small models
trained at once on one GPU.

    python benchmarks/train_throughput.py --sizes tiny-1l tiny-2l tiny-4l --threads 1          # CPU
    python benchmarks/train_throughput.py --sizes gpt2-small --context 1024 --vocab 50257 \\
        --batch-tokens 524288 --micro-batch-tokens 16384 --compile                               # one H100
    python benchmarks/train_throughput.py --sizes hern-2l --concurrent 4                        # sweep packing

FLOPs per token = 6 N + 12 L T d: N counts every matrix multiply's weights (the non-embedding parameters
plus the tied unembedding, V d, which is a real matmul), 12 L T d the attention scores and mixing
(forward + backward, no discount for the causal mask, as in PaLM / nanoGPT). MFU = FLOPs/s over the
hardware's peak: dense bf16 (or TF32) tensor-core peak on GPU; on CPU, cores x clock x FLOPs/cycle of the
widest FMA unit (an estimate; pass --peak-tflops to override). Data are random tokens in a synthetic
prepared dataset, so the trainer runs exactly its real code path (loader, schedule, accumulation, clip).
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer, models
import torch
import torch.nn.functional as F

from repeatlab.data.prepared import TOKENIZER_FILE
from repeatlab.data.tokens import EOT, TextTokenizer
from repeatlab.data.mixture import MixtureSpec, load_mixture, make_mixture
from repeatlab.data.prepared import load_prepared
from repeatlab.io import write_json
from repeatlab.models.gpt import GPT, ModelConfig
from repeatlab.models.sizes import model_config
from repeatlab.train.config import OptimConfig, RunConfig, TrainConfig
from repeatlab.train.distributed import World, world
from repeatlab.train.trainer import Trainer, build_optimizer

# Dense peak FLOP/s by GPU name fragment: (bf16 tensor core, tf32 tensor core).
GPU_PEAKS = {
    "H200": (989e12, 495e12),
    "H100 PCIe": (756e12, 378e12),
    "H100": (989e12, 495e12),
    "A100": (312e12, 156e12),
    "L40S": (362e12, 183e12),
    "L4": (121e12, 60e12),
    "A10G": (70e12, 35e12),
}


def flops_per_token(config: ModelConfig) -> float:
    """Training FLOPs per token: 6 (matmul weights) + 12 L T d (attention)."""
    n_matmul = config.n_params_scaling_law + config.vocab_size * config.d_model
    return 6 * n_matmul + 12 * config.n_layer * config.context * config.d_model


def peak_flops(device: torch.device, dtype: torch.dtype, threads: int) -> tuple[float | None, str]:
    """The hardware's peak FLOP/s for this precision, and how it was obtained."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for fragment, (bf16, tf32) in GPU_PEAKS.items():
            if fragment in name:
                peak = bf16 if dtype == torch.bfloat16 else tf32
                return peak, f"{name}: dense {'bf16' if dtype == torch.bfloat16 else 'tf32'} peak"
        return None, f"{name}: unknown peak (pass --peak-tflops)"
    flags, mhz = "", 0.0
    try:
        text = Path("/proc/cpuinfo").read_text()
        flags = next((line for line in text.splitlines() if line.startswith("flags")), "")
        mhz = max(float(line.split(":")[1]) for line in text.splitlines() if line.startswith("cpu MHz"))
    except (OSError, ValueError, StopIteration):
        pass
    per_cycle = 64 if "avx512f" in flags else 32 if "fma" in flags else 8  # fp32 FLOPs/cycle/core (2 FMA units)
    if not mhz:
        return None, "CPU: unknown clock (pass --peak-tflops)"
    peak = threads * mhz * 1e6 * per_cycle
    return peak, f"CPU: {threads} core(s) x {mhz / 1e3:.2f} GHz x {per_cycle} fp32 FLOPs/cycle"


def matmul_peak_flops(device: torch.device, dtype: torch.dtype, *, size: int, seconds: float) -> float:
    """FLOP/s of a large square matmul, the best of repeated timings over about ``seconds``: the measured dense
    peak that MFU is quoted against (PaLM convention) where a datasheet figure is unknown or unreachable."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    best, spent = float("inf"), 0.0
    a @ b  # warm-up: kernel selection, allocator
    _sync(device)
    while spent < seconds:
        started = time.perf_counter()
        a @ b
        _sync(device)
        elapsed = time.perf_counter() - started
        best, spent = min(best, elapsed), spent + elapsed
    return 2 * size**3 / best


def synthetic_data(root: Path, *, vocab: int, context: int, n_tokens: int) -> tuple[Path, Path]:
    """A prepared dataset of random tokens and a control mixture over all of it."""
    dataset = root / "prepared"
    dataset.mkdir(parents=True, exist_ok=True)
    dtype = np.uint16 if vocab <= 2**16 else np.uint32
    rng = np.random.default_rng(0)
    counts = {}
    for split, n in (("train", n_tokens), ("test", 64 * context + 1)):
        rng.integers(0, vocab, size=n, dtype=dtype).tofile(dataset / f"{split}.bin")
        counts[split] = {"n_tokens": n, "n_sequences": (n - 1) // context, "n_documents": 1, "n_chars": n}
    write_json(dataset / "meta.json", {"kind": "prepared", "source": "synthetic", "vocab_size": vocab,
                                       "dtype": np.dtype(dtype).name, "context": context, "seed": 0, **counts})
    # load_prepared checks the tokenizer against meta.json: word-level ids 0 .. vocab - 2, end-of-text last.
    words = Tokenizer(models.WordLevel(vocab={**{f"t{i}": i for i in range(vocab - 1)}, EOT: vocab - 1},
                                       unk_token=EOT))
    words.add_special_tokens([EOT])
    TextTokenizer(words).save(dataset / TOKENIZER_FILE)
    mixture = root / "mixture"
    n_seq = (n_tokens - 1) // context
    make_mixture(dataset, MixtureSpec(total_tokens=n_seq * context), mixture, overwrite=True)
    return dataset, mixture


def run_config(args: argparse.Namespace, size: str, dataset: Path, mixture: Path) -> RunConfig:
    return RunConfig(
        dataset=str(dataset), mixture=str(mixture), model=size, optim=OptimConfig(warmup_steps=10),
        train=TrainConfig(batch_tokens=args.batch_tokens, micro_batch_tokens=args.micro_batch_tokens,
                          device=args.device, precision=args.precision, compile=args.compile,
                          cpu_threads=args.threads, n_log_evals=0, eval_test_sequences=1),
    )  # fmt: skip


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def trainer_step(config: RunConfig, w: World) -> Callable[[], None]:
    """One ``Trainer.train_step`` (the code ``repeatlab train`` runs) with its loss check."""
    trainer = Trainer(config, w, dataset=load_prepared(config.dataset), mixture=load_mixture(config.mixture))

    def step() -> None:
        if trainer.step == trainer.plan.n_steps:  # wrap around the synthetic mixture
            trainer.progress.step = 0
        trainer.train_step()
        trainer.check_losses()

    return step


def reference_step(config: RunConfig, shape: ModelConfig, w: World) -> Callable[[], None]:
    """A plain PyTorch loop's step: same model, AdamW, micro-batches, clipping and precision."""
    torch.manual_seed(0)
    model = GPT(shape).to(w.device)
    module = torch.compile(model) if config.train.compile else model
    optimizer = build_optimizer(model, config.optim, w.device)
    micro = (config.train.micro_batch_tokens or config.train.batch_tokens) // shape.context
    n_micro = config.train.batch_tokens // shape.context // micro
    data = torch.randint(0, shape.vocab_size, (n_micro, micro, shape.context + 1), device=w.device)

    def step() -> None:
        for i in range(n_micro):
            with w.autocast():
                logits = module(data[i, :, :-1])
                loss = F.cross_entropy(logits.flatten(0, 1), data[i, :, 1:].flatten())
            (loss / n_micro).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def time_steps(step: Callable[[], None], *, steps: int, batch_tokens: int, device: torch.device) -> float:
    """Tokens/s over ``steps`` calls of ``step``."""
    _sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return steps * batch_tokens / (time.perf_counter() - started)


def compare(config: RunConfig, shape: ModelConfig, *, steps: int, warmup: int,
            repeats: int) -> tuple[float, float, torch.device, torch.dtype]:
    """Best-of-``repeats`` tokens/s of the trainer and of the plain loop, timed alternately (so load from
    other processes hits both alike)."""
    with world(config.train) as w:
        ours, ref = trainer_step(config, w), reference_step(config, shape, w)
        for _ in range(warmup):
            ours(), ref()
        best = [0.0, 0.0]
        for _ in range(repeats):
            for i, step in enumerate((ours, ref)):
                tps = time_steps(step, steps=steps, batch_tokens=config.train.batch_tokens, device=w.device)
                best[i] = max(best[i], tps)
        return best[0], best[1], w.device, w.dtype


def _concurrent_worker(config: RunConfig, steps: int, warmup: int, barrier: Any, out: Any, timeout_s: float,
                       core: int | None) -> None:
    # Each process trains its own model; the barrier lines up their timed windows. A failure (out of memory)
    # is sent back as its message, and breaks the barrier so that the others stop waiting.
    try:
        if core is not None:
            os.sched_setaffinity(0, {core})
        with world(config.train) as w:
            step = trainer_step(config, w)
            for _ in range(warmup):
                step()
            barrier.wait(timeout=timeout_s)
            out.put(time_steps(step, steps=steps, batch_tokens=config.train.batch_tokens, device=w.device))
    except Exception as error:  # noqa: BLE001 - reported to the parent, which names it
        barrier.abort()
        out.put(f"{type(error).__name__}: {error}")


def time_concurrent(config: RunConfig, k: int, *, steps: int, warmup: int, timeout_s: float = 3600.0,
                    pin: bool = False) -> float:
    """Total tokens/s of ``k`` processes each training one model on the same device at the same time; with
    ``pin``, process i runs on CPU core i (mod the cores) only.

    Raises ``RuntimeError`` naming the first failure of a process, or ``TimeoutError`` after ``timeout_s``
    (all processes are stopped either way)."""
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(k), ctx.Queue()
    cores = sorted(os.sched_getaffinity(0))
    procs = [ctx.Process(target=_concurrent_worker,
                         args=(config, steps, warmup, barrier, out, timeout_s, cores[i % len(cores)] if pin else None))
             for i in range(k)]
    deadline = time.monotonic() + timeout_s
    for p in procs:
        p.start()
    results: list[float | str] = []
    try:
        while len(results) < k:
            try:
                results.append(out.get(timeout=1.0))
            except queue.Empty:
                dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                if dead:  # killed before it could report (the out-of-memory killer, a signal)
                    raise RuntimeError(f"a process of {k} exited with code {dead[0]} before reporting") from None
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{k} concurrent processes did not finish within {timeout_s:.0f} s") from None
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
    failures = [r for r in results if isinstance(r, str)]
    if failures:
        raise RuntimeError(f"{len(failures)} of {k} processes failed; first: {failures[0]}")
    return sum(r for r in results if not isinstance(r, str))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["tiny-1l", "tiny-2l", "tiny-4l"])
    parser.add_argument("--context", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--batch-tokens", type=int, default=8192)
    parser.add_argument("--micro-batch-tokens", type=int, default=None)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="timed windows per loop; the best is reported")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--concurrent", type=int, default=None,
                        help="also train K models at once on the device (default: 4 on CUDA, off on CPU)")
    parser.add_argument("--pin", action="store_true", help="pin the K processes to one CPU core each")
    parser.add_argument("--peak-tflops", type=float, default=None, help="override the hardware peak")
    args = parser.parse_args()

    n_tokens = 16 * args.batch_tokens + args.context + 1
    with tempfile.TemporaryDirectory(prefix="repeatlab-bench-") as tmp:
        dataset, mixture = synthetic_data(Path(tmp), vocab=args.vocab, context=args.context, n_tokens=n_tokens)
        print(f"torch {torch.__version__}, {os.cpu_count()} CPU(s), threads={args.threads or torch.get_num_threads()}, "
              f"context {args.context}, vocab {args.vocab}, batch {args.batch_tokens} tokens, {args.steps} timed steps")
        for size in args.sizes:
            config = run_config(args, size, dataset, mixture)
            shape = model_config(size, vocab_size=args.vocab, context=args.context)
            ours, ref, device, dtype = compare(config, shape, steps=args.steps, warmup=args.warmup,
                                               repeats=args.repeats)
            peak, how = peak_flops(device, dtype, args.threads or torch.get_num_threads())
            peak = args.peak_tflops * 1e12 if args.peak_tflops else peak
            fpt = flops_per_token(shape)
            mfu = (lambda tps: f"{100 * tps * fpt / peak:5.1f}%" if peak else "  n/a")
            print(f"{size:>12} N={shape.n_params_scaling_law / 1e6:7.2f}M {device.type}/{str(dtype)[6:]:8} "
                  f"trainer {ours:10,.0f} tok/s MFU {mfu(ours)} | plain loop {ref:10,.0f} tok/s MFU {mfu(ref)} | "
                  f"ratio {ours / ref:.2f}  [{fpt / 1e6:.1f} MFLOP/token; {how}]")
            k = args.concurrent if args.concurrent is not None else (4 if device.type == "cuda" else 0)
            if k > 1:
                together = time_concurrent(config, k, steps=args.steps, warmup=args.warmup, pin=args.pin)
                print(f"{'':>12} {k} models at once: {together:10,.0f} tok/s in total = {together / ours:.2f} x one "
                      f"model (target >= {0.7 * k:.1f})")


if __name__ == "__main__":
    main()
