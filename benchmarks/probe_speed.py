"""Wall time of the full probe set (and of each probe alone) for named model sizes, on CPU and on CUDA when present.

    python benchmarks/probe_speed.py                                   # tiny and small sizes, CPU (+ CUDA)
    python benchmarks/probe_speed.py --sizes gpt2-small hern-12l --vocab 50257 --context 1024 --devices cuda
    python benchmarks/probe_speed.py --memorisation                    # KV-cached greedy decoding vs uncached

Models are randomly initialised (probe cost does not depend on the weights, except memorisation, which
decodes every sequence that is not already memorised: the worst case). Data are random tokens in a
synthetic prepared dataset with a repeated mixture, so every probe runs its real code path with the
default ``ProbeConfig``. ``--memorisation`` instead times the memorisation probe's greedy decoding with
the KV cache against the uncached reference it replaced (every step re-runs the whole prefix), in the same
process on the same rows, and checks that both give the same hits. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from repeatlab.data.mixture import MixtureSpec, load_mixture, make_mixture
from repeatlab.data.prepared import load_prepared
from repeatlab.io import write_json
from repeatlab.models.gpt import GPT
from repeatlab.models.sizes import model_config
from repeatlab.probes import PROBE_NAMES, ProbeConfig, greedy_matches, run_probes
from repeatlab.probes.memorisation import logits_from


def synthetic_data(root: Path, *, vocab: int, context: int, n_train_sequences: int) -> tuple[Path, Path]:
    """A prepared dataset of random tokens (end-of-text id 0) and a mixture repeating 10% of it 4 times."""
    dataset = root / "prepared"
    dataset.mkdir(parents=True, exist_ok=True)
    dtype = np.uint16 if vocab <= 2**16 else np.uint32
    rng = np.random.default_rng(0)
    counts = {}
    for split, n_seq in (("train", n_train_sequences), ("test", 256)):
        n = n_seq * context + 1
        rng.integers(0, vocab, size=n, dtype=dtype).tofile(dataset / f"{split}.bin")
        counts[split] = {"n_tokens": n, "n_sequences": n_seq, "n_documents": 1, "n_chars": n}
    write_json(dataset / "meta.json", {"kind": "prepared", "source": "synthetic", "vocab_size": vocab, "eot_id": 0,
                                       "dtype": np.dtype(dtype).name, "context": context, "seed": 0, **counts})
    mixture = root / "mixture"
    spec = MixtureSpec(total_tokens=n_train_sequences // 2 * context, repeated_fraction=0.4, repeated_epochs=4)
    make_mixture(dataset, spec, mixture, overwrite=True)
    return dataset, mixture


def timed(fn, device: str) -> float:  # noqa: ANN001
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


@torch.no_grad()
def uncached_greedy_matches(model: GPT, rows: torch.Tensor, *, prefix_tokens: int, continuation_tokens: int,
                            batch_size: int) -> torch.Tensor:
    """The baseline: ``greedy_matches`` as it was before the KV cache, re-running the prefix at every step."""
    P, K = prefix_tokens, continuation_tokens
    device = next(model.parameters()).device
    out = []
    for batch in rows.split(batch_size):
        truth = batch[:, : P + K].to(device=device, dtype=torch.int64)  # [B, P + K]
        hits = logits_from(model, truth[:, :-1], P - 1).argmax(dim=-1) == truth[:, P:]  # [B, K]
        first_miss = torch.where(hits.all(dim=1), K, (~hits).int().argmax(dim=1))  # [B]
        active = first_miss < K  # [B]
        if active.any():
            buffer = truth[active].clone()  # [A, P + K]
            for j in range(int(first_miss[active].min()), K):
                buffer[:, P + j] = logits_from(model, buffer[:, : P + j], P + j - 1)[:, 0].argmax(dim=-1)  # [A]
            hits[active] = buffer[:, P:] == truth[active][:, P:]
        out.append(hits.cpu())
    return torch.cat(out)


def compare_memorisation(model: GPT, rows: torch.Tensor, config: ProbeConfig, device: str, repeats: int) -> str:
    """Best-of-``repeats`` wall time of cached and uncached decoding of ``rows``, timed alternately."""
    P, K = config.memorisation_prefix_tokens, config.memorisation_continuation_tokens
    # The batch the probe suite uses for short sequences: as many tokens as batch_size full contexts.
    batch = max(config.batch_size, config.batch_size * model.config.context // (P + K))
    kwargs = {"prefix_tokens": P, "continuation_tokens": K, "batch_size": batch}
    cached_s, uncached_s = [], []
    for _ in range(repeats):
        cached_s.append(timed(lambda: greedy_matches(model, rows, **kwargs), device))
        uncached_s.append(timed(lambda: uncached_greedy_matches(model, rows, **kwargs), device))
    same = torch.equal(greedy_matches(model, rows, **kwargs), uncached_greedy_matches(model, rows, **kwargs))
    cached, uncached = min(cached_s), min(uncached_s)
    return (f"cached {cached:.2f}s, uncached {uncached:.2f}s, ratio {uncached / cached:.1f}x "
            f"({rows.shape[0]} rows, batch {batch}, same hits: {same})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=None, help="size names (default: tiny-2l tiny-4l hern-2l "
                        "attn-only-2l on CPU; plus hern-4l gpt2-small hern-12l on CUDA)")
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--context", type=int, default=256)
    parser.add_argument("--devices", nargs="+", default=None, help="cpu and/or cuda (default: cpu, and cuda if present)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--per-probe", action="store_true", help="also time each probe alone")
    parser.add_argument("--memorisation", action="store_true",
                        help="time cached vs uncached memorisation decoding instead of the probe set")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs for --memorisation")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    with tempfile.TemporaryDirectory() as tmp:
        dataset_dir, mixture_dir = synthetic_data(Path(tmp), vocab=args.vocab, context=args.context,
                                                  n_train_sequences=2048)
        dataset, mixture = load_prepared(dataset_dir), load_mixture(mixture_dir)
        print(f"vocab {args.vocab}, context {args.context}, default ProbeConfig (batch {args.batch_size}); "
              f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
        for device in devices:
            sizes = args.sizes or (["tiny-2l", "tiny-4l", "hern-2l", "attn-only-2l"]
                                   + (["hern-4l", "gpt2-small", "hern-12l"] if device == "cuda" else []))
            name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
            print(f"\n{name}")
            print(f"{'size':<14}{'layers':>7}{'heads':>7}{'d_model':>9}{'params':>10}"
                  + ("  memorisation decoding" if args.memorisation else f"{'all probes':>12}"))
            for size in sizes:
                torch.manual_seed(0)
                model = GPT(model_config(size, vocab_size=args.vocab, context=args.context)).to(device)
                config = ProbeConfig(batch_size=args.batch_size)
                cfg = model.config
                if args.memorisation:
                    rows = torch.from_numpy(dataset.sequences("train")[: config.n_memorisation_sequences]
                                            .astype(np.int64))  # random tokens: nearly every row is decoded
                    greedy_matches(model, rows[:2], batch_size=2)  # warm-up
                    print(f"{size:<14}{cfg.n_layer:>7}{cfg.n_head:>7}{cfg.d_model:>9}{model.n_params() / 1e6:>9.1f}M  "
                          + compare_memorisation(model, rows, config, device, args.repeats), flush=True)
                    continue
                run_probes(model, dataset, mixture, ProbeConfig(probes=("icl",), n_test_sequences=2))  # warm-up
                seconds = timed(lambda: run_probes(model, dataset, mixture, config), device)  # noqa: B023
                print(f"{size:<14}{cfg.n_layer:>7}{cfg.n_head:>7}{cfg.d_model:>9}"
                      f"{model.n_params() / 1e6:>9.1f}M{seconds:>11.2f}s", flush=True)
                if args.per_probe:
                    parts = []
                    for probe in PROBE_NAMES:
                        single = ProbeConfig(probes=(probe,), batch_size=args.batch_size)
                        t = timed(lambda: run_probes(model, dataset, mixture, single), device)  # noqa: B023
                        parts.append(f"{probe} {t:.2f}s")
                    print("    " + ", ".join(parts), flush=True)


if __name__ == "__main__":
    main()
