"""Which CPU regime gives controls the paper's preconditions? A search over corpus, size and recipe.

Hernandez et al.'s effect needs controls that are capacity-limited (test loss flat against tokens by the end,
well below a bigram model of the pool, a power law in N) and that form induction heads. This trains f = 0
controls for every combination given on the command line and prints, per run: final test loss, its drop over
the last half of training (flatness), the dataset's bigram baseline, the top induction and prefix-matching
scores (max over heads, logged at every evaluation) and the ICL score.

    python experiments/cpu_regime.py runs/regime --corpus python-stdlib builtin \\
        --sizes tiny-2l attn-only-tiny-2l --seeds 0 1 --tokens 2000000 --workers 2

``--copy-spans MIN MAX`` trains on the corpus with an in-context copy inserted into every window instead (a
corpus where copying pays in every sequence).

Each run is one thread; ``--workers`` runs that many side by side. Finished runs are reused, so the command
can be repeated with more seeds or sizes. Results: docs/reproduction.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from repeatlab.data.baselines import dataset_bigram_baseline
from repeatlab.data.mixture import MixtureSpec, make_mixture
from repeatlab.data.prepare import PrepareConfig, prepare_dataset
from repeatlab.data.prepared import META_FILE, TOKENIZER_FILE, load_prepared
from repeatlab.io import atomic_directory, read_json, write_json
from repeatlab.dynamics import train_with_probes
from repeatlab.train import OptimConfig, RunConfig, TrainConfig


def dataset_dir(root: Path, corpus: str, context: int) -> Path:
    path = root / "data" / f"{corpus}-byte{context}"
    if not path.exists():
        prepare_dataset(PrepareConfig(source=corpus, tokenizer="byte", context=context), path)
    return path


def copy_augmented(root: Path, data: Path, corpus: str, shortest: int, longest: int) -> Path:
    """``data`` with an in-context copy in every window: each ``context``-token window is ``context - k``
    consecutive tokens of the corpus with a span of ``k`` (drawn from ``shortest..longest``) of them inserted again
    later in the window, so that copying pays in every sequence. Train and test splits alike (seeds 0 and 1)."""
    path = root / "data" / f"{corpus}+copy{shortest}-{longest}-{data.name}"
    if path.exists():
        return path
    meta = read_json(data / META_FILE)
    context = meta["context"]
    with atomic_directory(path) as tmp:
        for split, seed in (("train", 0), ("test", 1)):
            tokens = np.fromfile(data / f"{split}.bin", dtype=meta["dtype"])
            rng, windows, start = np.random.default_rng(seed), [], 0
            while True:
                k = int(rng.integers(shortest, longest + 1))
                chunk = tokens[start : start + context - k]
                if len(chunk) < context - k:
                    break
                first = int(rng.integers(0, len(chunk) - k))  # the span, copied again at ``again`` (>= its end)
                again = int(rng.integers(first + k, len(chunk) + 1))
                windows.append(np.concatenate([chunk[:again], chunk[first : first + k], chunk[again:]]))
                start += context - k
            joined = np.concatenate(windows)
            joined.tofile(tmp / f"{split}.bin")
            meta[split] = {**meta[split], "n_tokens": len(joined), "n_sequences": (len(joined) - 1) // context}
        meta["source"] = f"{meta['source']}+copy{shortest}-{longest}"
        shutil.copy(data / TOKENIZER_FILE, tmp / TOKENIZER_FILE)
        write_json(tmp / META_FILE, meta)
    return path


def train_one(job: dict) -> dict:
    root, data = Path(job["root"]), Path(job["data"])
    name = (f"{job['corpus']}-{job['size']}-lr{job['lr']:g}-w{job['warmup']}-T{job['tokens']}-b{job['batch']}"
            f"-s{job['seed']}")
    mixture = root / "mixtures" / f"{job['corpus']}-T{job['tokens']}-s{job['seed']}"
    if not mixture.exists():
        make_mixture(data, MixtureSpec(total_tokens=job["tokens"], seed=job["seed"]), mixture)
    context = load_prepared(data).context
    config = RunConfig(
        dataset=str(data), mixture=str(mixture), model=job["size"],
        optim=OptimConfig(lr=job["lr"], warmup_steps=job["warmup"]),
        train=TrainConfig(batch_tokens=job["batch"] * context, n_log_evals=8, eval_every=max(1, job["steps"] // 8),
                          eval_test_sequences=128, eval_repeated_sequences=0, checkpoint_every=10_000,
                          device="cpu", cpu_threads=1, seed=job["seed"],
                          probe_metrics=("induction", "prefix_matching", "icl"), probe_sequences=32),
    )
    summary = train_with_probes(config, root / "runs" / name)
    records = [json.loads(line) for line in (root / "runs" / name / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if "test_loss" in r]
    half = min(evals, key=lambda r: abs(r["step"] - job["steps"] / 2))
    last = evals[-1]
    return {**{k: job[k] for k in ("corpus", "size", "lr", "warmup", "tokens", "batch", "seed")},
            "test_loss": last["test_loss"], "drop_last_half": half["test_loss"] - last["test_loss"],
            "induction": last.get("induction.max"), "induction_peak": max(r.get("induction.max", 0) for r in evals),
            "prefix_matching": last.get("prefix_matching.max"), "icl": last.get("icl.score"),
            "wall_s": summary.get("wall_time_s"),
            "curve": [(r["step"], round(r["test_loss"], 4), round(r.get("induction.max", 0), 3)) for r in evals]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--corpus", nargs="+", default=["python-stdlib"])
    parser.add_argument("--sizes", nargs="+", default=["tiny-2l"])
    parser.add_argument("--lr", nargs="+", type=float, default=[3e-3])
    parser.add_argument("--warmup", nargs="+", type=int, default=[50])
    parser.add_argument("--batch", nargs="+", type=int, default=[16], help="sequences per step")
    parser.add_argument("--tokens", type=int, default=2_000_000)
    parser.add_argument("--context", type=int, default=256)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--copy-spans", nargs=2, type=int, metavar=("MIN", "MAX"),
                        help="insert an in-context copy of MIN..MAX tokens into every window (copy_augmented)")
    args = parser.parse_args()
    root = args.out.resolve()
    data = {corpus: dataset_dir(root, corpus, args.context) for corpus in args.corpus}
    if args.copy_spans:
        data = {f"{corpus}+copy{args.copy_spans[0]}-{args.copy_spans[1]}":
                copy_augmented(root, path, corpus, *args.copy_spans) for corpus, path in data.items()}
        args.corpus = list(data)
    bigram = {corpus: dataset_bigram_baseline(load_prepared(path)).test_loss for corpus, path in data.items()}
    jobs = [dict(root=str(root), data=str(data[c]), corpus=c, size=s, lr=lr, warmup=w, batch=b, seed=seed,
                 tokens=args.tokens, steps=args.tokens // (b * args.context))
            for c, s, lr, w, b, seed in itertools.product(args.corpus, args.sizes, args.lr, args.warmup, args.batch,
                                                           args.seeds)]
    with ProcessPoolExecutor(args.workers) as pool:
        rows = list(pool.map(train_one, jobs))
    with open(root / "results.jsonl", "a", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps({**row, "bigram": bigram[row["corpus"]]}) + "\n")
    print(f"{'corpus':<14} {'size':<18} {'lr':>7} {'wu':>4} {'b':>3} {'seed':>4} {'test':>6} {'bigram':>6} "
          f"{'drop½':>6} {'ind':>5} {'indpk':>5} {'pm':>5} {'icl':>6} {'s':>5}")
    for r in rows:
        print(f"{r['corpus']:<14} {r['size']:<18} {r['lr']:>7g} {r['warmup']:>4} {r['batch']:>3} {r['seed']:>4} "
              f"{r['test_loss']:>6.3f} {bigram[r['corpus']]:>6.3f} {r['drop_last_half']:>6.3f} {r['induction']:>5.2f} "
              f"{r['induction_peak']:>5.2f} {r['prefix_matching']:>5.2f} {r['icl']:>6.3f} {r['wall_s'] or 0:>5.0f}")


if __name__ == "__main__":
    main()
