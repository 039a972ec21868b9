"""The measurements of ``scripts/gpu_check.sh``, one subcommand per part, each under its own time budget.

    python benchmarks/gpu_check.py mfu OUT.json --budget-s 170          # (a) gpt2-small bf16 MFU at context 1024
    python benchmarks/gpu_check.py many OUT.json --budget-s 200         # (b) K small models on one GPU
    python benchmarks/gpu_check.py workers MANY.json                    # (c) the sweep's worker count from (b)
    python benchmarks/gpu_check.py toy-grid DIR                         # (c) at --dry-run: a toy grid and corpus

(a) measures the chip's dense bf16 peak with a large matmul in the same process, then trains gpt2-small through
``Trainer`` (eager, then compiled) and quotes MFU against it (PaLM convention: 6 N + 12 L T d FLOPs per token,
``train_throughput.flops_per_token``). (b) trains hern-2l and hern-4l (gpu-small's byte vocabulary, context 512
and 32-sequence batches) at K = 1, 4, 16, 64, as K concurrent trainer processes and as K models stacked with
``torch.func`` (``stacked_models``), and divides each aggregate by K x one model. Every result is written to the
JSON file as soon as it is measured (atomically), so a part stopped at its budget keeps what it finished; what did
not fit is listed with the reason. ``--dry-run`` runs every path at toy size on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from repeatlab.data.prepare import PrepareConfig
from repeatlab.io import write_json
from repeatlab.models.sizes import model_config
from repeatlab.sweeps.grid import GridConfig, ResourcesConfig, grid_to_toml
from repeatlab.train.config import OptimConfig, RunConfig, TrainConfig
from repeatlab.train.distributed import world
from stacked_models import time_stacked
from train_throughput import flops_per_token, matmul_peak_flops, synthetic_data, time_concurrent, trainer_step


@dataclass(frozen=True)
class Scale:
    """Sizes and step counts of one scale of the check: the real one, or the CPU dry run."""

    device: str
    mfu_size: str
    mfu_vocab: int
    mfu_context: int
    mfu_micro_sequences: int
    mfu_accum: int
    matmul_size: int
    many_sizes: tuple[str, ...]
    many_ks: tuple[int, ...]
    many_vocab: int
    many_context: int
    many_sequences: int
    steps: int
    warmup: int


REAL = Scale(device="cuda", mfu_size="gpt2-small", mfu_vocab=50257, mfu_context=1024, mfu_micro_sequences=16,
             mfu_accum=8, matmul_size=8192, many_sizes=("hern-2l", "hern-4l"), many_ks=(1, 4, 16, 64),
             many_vocab=256, many_context=512, many_sequences=32, steps=10, warmup=3)
DRY = Scale(device="cpu", mfu_size="tiny-1l", mfu_vocab=256, mfu_context=64, mfu_micro_sequences=2, mfu_accum=2,
            matmul_size=256, many_sizes=("tiny-1l",), many_ks=(1, 2), many_vocab=256, many_context=32,
            many_sequences=4, steps=2, warmup=1)


class Budget:
    """Seconds left of a part's budget."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    @property
    def left_s(self) -> float:
        return self.deadline - time.monotonic()


class Record:
    """The part's JSON result, rewritten atomically after every change."""

    def __init__(self, path: Path, **header: Any) -> None:
        self.path, self.data = path, {**header, "results": [], "skipped": []}
        self.save()

    def add(self, key: str, item: dict[str, Any]) -> None:
        self.data[key].append(item)
        self.save()

    def save(self) -> None:
        write_json(self.path, self.data)


def environment(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {"torch": torch.__version__, "python": platform.python_version(), "host": platform.node(),
                            "cpus": os.cpu_count(), "device": device.type}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["gpu_memory_gib"] = round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1)
    return info


def run_config(dataset: Path, mixture: Path, size: str, *, batch_tokens: int, micro_batch_tokens: int | None,
               device: str, compile: bool, threads: int | None) -> RunConfig:
    return RunConfig(dataset=str(dataset), mixture=str(mixture), model=size, optim=OptimConfig(warmup_steps=10),
                     train=TrainConfig(batch_tokens=batch_tokens, micro_batch_tokens=micro_batch_tokens,
                                       device=device, precision="bf16", compile=compile, cpu_threads=threads,
                                       n_log_evals=0, eval_test_sequences=1, eval_repeated_sequences=1))


def timed_steps(step: Callable[[], None], *, steps: int, warmup: int, batch_tokens: int, device: torch.device,
                budget: Budget) -> tuple[float, int]:
    """Tokens/s over up to ``steps`` steps after ``warmup``, stopping early when the budget runs out."""
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started, done = time.perf_counter(), 0
    while done < steps and (done == 0 or budget.left_s > 0):
        step()
        done += 1
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return done * batch_tokens / (time.perf_counter() - started), done


def measure_mfu(out: Path, scale: Scale, budget: Budget) -> None:
    """(a): the bf16 matmul peak, then gpt2-small training MFU, eager then compiled."""
    device = torch.device(scale.device)
    peak = matmul_peak_flops(device, torch.bfloat16, size=scale.matmul_size, seconds=3.0)
    shape = model_config(scale.mfu_size, vocab_size=scale.mfu_vocab, context=scale.mfu_context)
    fpt = flops_per_token(shape)
    micro = scale.mfu_micro_sequences * scale.mfu_context
    record = Record(out, part="mfu", environment=environment(device), size=scale.mfu_size,
                    context=scale.mfu_context, vocab=scale.mfu_vocab, batch_tokens=micro * scale.mfu_accum,
                    micro_batch_tokens=micro, precision="bf16", flops_per_token=fpt,
                    matmul_peak_flops=peak, matmul_size=scale.matmul_size)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        dataset, mixture = synthetic_data(Path(tmp), vocab=scale.mfu_vocab, context=scale.mfu_context,
                                          n_tokens=4 * micro * scale.mfu_accum + scale.mfu_context + 1)
        for compile in (False, True):
            name = "compiled" if compile else "eager"
            if budget.left_s < 10:
                record.add("skipped", {"variant": name, "reason": "part budget spent"})
                continue
            config = run_config(dataset, mixture, scale.mfu_size, batch_tokens=micro * scale.mfu_accum,
                                micro_batch_tokens=micro, device=scale.device, compile=compile, threads=None)
            started = time.perf_counter()
            with world(config.train) as w:
                tps, steps = timed_steps(trainer_step(config, w), steps=scale.steps, warmup=scale.warmup,
                                         batch_tokens=config.train.batch_tokens, device=w.device, budget=budget)
            record.add("results", {"variant": name, "tokens_per_s": tps, "timed_steps": steps,
                                   "mfu": tps * fpt / peak, "seconds": time.perf_counter() - started})
            print(f"(a) {scale.mfu_size} {name}: {tps:,.0f} tok/s, MFU {100 * tps * fpt / peak:.1f}% of the measured "
                  f"bf16 peak {peak / 1e12:.1f} TFLOP/s", flush=True)


def measure_many(out: Path, scale: Scale, budget: Budget) -> None:
    """(b): K models per device, as concurrent trainer processes and stacked with torch.func."""
    device = torch.device(scale.device)
    batch_tokens = scale.many_sequences * scale.many_context
    record = Record(out, part="many_models", environment=environment(device), vocab=scale.many_vocab,
                    context=scale.many_context, batch_tokens=batch_tokens, precision="bf16")
    plan = [(size, k, way) for size in scale.many_sizes for k in scale.many_ks
            for way in ("processes", "stacked")]
    single: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        dataset, mixture = synthetic_data(Path(tmp), vocab=scale.many_vocab, context=scale.many_context,
                                          n_tokens=16 * batch_tokens + scale.many_context + 1)
        for size, k, way in plan:
            item: dict[str, Any] = {"size": size, "k": k, "way": way}
            if budget.left_s < 10:
                record.add("skipped", {**item, "reason": "part budget spent"})
                continue
            started = time.perf_counter()
            try:
                if way == "processes":
                    config = run_config(dataset, mixture, size, batch_tokens=batch_tokens, micro_batch_tokens=None,
                                        device=scale.device, compile=False, threads=1)
                    tps = time_concurrent(config, k, steps=scale.steps, warmup=scale.warmup,
                                          timeout_s=budget.left_s)
                else:
                    shape = model_config(size, vocab_size=scale.many_vocab, context=scale.many_context)
                    tps = time_stacked(shape, k, batch_sequences=scale.many_sequences, device=device,
                                       dtype=torch.bfloat16, steps=scale.steps, warmup=scale.warmup)
            except (RuntimeError, TimeoutError) as error:  # out of memory, a failed or late process
                record.add("skipped", {**item, "reason": f"{type(error).__name__}: {str(error)[:300]}"})
                print(f"(b) {size} K={k} {way}: {type(error).__name__}", flush=True)
                continue
            finally:
                if device.type == "cuda":  # hand the stacked models' cached memory back before processes start
                    torch.cuda.empty_cache()
            single.setdefault((size, way), tps / k)  # K = 1 comes first
            one = single.get((size, "processes"), single[(size, way)])
            item.update(tokens_per_s=tps, x_k_single=tps / (k * one), seconds=time.perf_counter() - started)
            record.add("results", item)
            print(f"(b) {size} K={k:2d} {way:>9}: {tps:12,.0f} tok/s in total = {tps / (k * one):.2f} x K x one "
                  f"model ({time.perf_counter() - started:.0f} s)", flush=True)


MAX_SWEEP_WORKERS = 8
"""More workers share the GPU more ways, so each run takes longer; beyond this few would finish inside a slice of
a few minutes, and an unfinished run is lost (``scripts/ephemeral_sweep.sh`` keeps finished runs only)."""


def best_workers(many: Path) -> int:
    """The number of concurrent processes, at most ``MAX_SWEEP_WORKERS``, with the highest aggregate tokens/s
    for the largest size measured at more than one K (1 when none was): the sweep's ``--workers``."""
    results = [r for r in json.loads(many.read_text())["results"]
               if r["way"] == "processes" and r["k"] <= MAX_SWEEP_WORKERS]
    by_size: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by_size.setdefault(r["size"], []).append(r)
    measured = [rows for rows in by_size.values() if len(rows) > 1]
    if not measured:
        return 1
    return int(max(measured[-1], key=lambda r: r["tokens_per_s"])["k"])


def write_toy_grid(root: Path) -> Path:
    """A 2-run grid of tiny-1l on a generated corpus: part (c) of the dry run."""
    corpus = root / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    words = "the quick brown fox jumps over a lazy dog while seven wizards quietly hex jolly vexing bards".split()
    for i in range(40):
        body = " ".join(words[(i * 7 + j * 3 + j * j) % len(words)] for j in range(50))
        (corpus / f"doc{i:03d}.txt").write_text(f"Document {i}. {body}.", encoding="utf-8")
    grid = GridConfig(
        name="gpu-check-dry-run", sizes=("tiny-1l",), total_tokens=32 * 16, repeated_fractions=(0.5,),
        repeated_epochs=(4,), data=PrepareConfig(source=str(corpus), tokenizer="byte", context=16, test_fraction=0.1),
        optim=OptimConfig(lr=3e-3, warmup_steps=2),
        train=TrainConfig(batch_tokens=8 * 16, n_log_evals=2, eval_test_sequences=8, eval_repeated_sequences=8,
                          checkpoint_every=2, device="cpu"),
        probes=None, resources=ResourcesConfig(local_workers=1),
    )  # fmt: skip
    path = root / "grid.toml"
    path.write_text(grid_to_toml(grid), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="part", required=True)
    for part in ("mfu", "many"):
        p = sub.add_parser(part)
        p.add_argument("out", type=Path, help="JSON file of the results")
        p.add_argument("--budget-s", type=float, required=True, help="seconds this part may take")
        p.add_argument("--dry-run", action="store_true", help="toy sizes on the CPU")
    sub.add_parser("workers").add_argument("many", type=Path, help="JSON written by the many part")
    sub.add_parser("toy-grid").add_argument("dir", type=Path)
    args = parser.parse_args()
    if args.part == "workers":
        print(best_workers(args.many))
    elif args.part == "toy-grid":
        print(write_toy_grid(args.dir))
    else:
        scale = DRY if args.dry_run else REAL
        if scale.device == "cuda" and not torch.cuda.is_available():
            raise SystemExit("no CUDA GPU here: run with --dry-run for the CPU check at toy size")
        (measure_mfu if args.part == "mfu" else measure_many)(args.out, scale, Budget(args.budget_s))


if __name__ == "__main__":
    main()
