"""Data-layer throughput: tokenisation in ``prepare`` and a 10^9-token mixture index.

Prints (never asserts):
- MB/s of repeatlab's encode-pack-write path over the built-in corpus's training documents, against
  Hugging Face ``tokenizers``' own ``encode_batch_fast`` on the same documents (ratio);
- seconds to build a 10^9-token repeated mixture over a synthetic pool (a sparse token file, so
  nothing is read into RAM), to walk its whole index batch by batch, and to read 1,000 batches of
  real rows through the memmap.

Usage: python benchmarks/data_throughput.py [--vocab-size 8192] [--context 1024]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path


from repeatlab.data.corpus import load_corpus
from repeatlab.data.loader import MixtureLoader
from repeatlab.data.mixture import MixtureSpec, build_mixture, dataset_fingerprint
from repeatlab.data.prepare import _write_tokens, split_documents
from repeatlab.data.prepared import PreparedDataset
from repeatlab.data.tokens import token_dtype, train_bpe


def tokenisation(vocab_size: int) -> None:
    corpus = load_corpus("builtin")
    split = split_documents(corpus.documents, 0.05, 0)
    docs = [corpus.documents[i] for i in split.train]
    megabytes = sum(len(d.encode("utf-8")) for d in docs) / 1e6
    tokenizer = train_bpe(docs, vocab_size)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        n_tokens = _write_tokens(tokenizer, docs, Path(tmp) / "train.bin", token_dtype(tokenizer.vocab_size))
        ours = time.perf_counter() - start
    start = time.perf_counter()
    tokenizer.tokenizer.encode_batch_fast(docs, add_special_tokens=False)
    reference = time.perf_counter() - start
    print(f"corpus: builtin training split, {megabytes:.1f} MB, {n_tokens:,} tokens, BPE vocab {vocab_size}")
    print(f"repeatlab prepare (encode + pack + write): {megabytes / ours:8.2f} MB/s")
    print(f"tokenizers encode_batch_fast (reference):  {megabytes / reference:8.2f} MB/s")
    print(f"ratio repeatlab / reference: {reference / ours:.2f}")


def billion_token_index(context: int) -> None:
    n_seq = 10**9 // context + 1000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        n_tokens = n_seq * context + 1
        with open(path / "train.bin", "wb") as handle:
            handle.truncate(n_tokens * 2)  # sparse: no disk written, reads return zeros
        (path / "test.bin").write_bytes(b"")
        meta = {"kind": "prepared", "source": "synthetic", "vocab_size": 50257, "context": context, "seed": 0,
                "dtype": "uint16", "train": {"n_tokens": n_tokens, "n_sequences": n_seq},
                "test": {"n_tokens": 0, "n_sequences": 0}}
        pool = PreparedDataset(path=path, meta=meta)
        start = time.perf_counter()
        mixture = build_mixture(pool, MixtureSpec(total_tokens=10**9, repeated_fraction=0.1, repeated_epochs=100))
        built = time.perf_counter() - start
        assert mixture.manifest["dataset_fingerprint"] == dataset_fingerprint(pool)
        batch = 32
        start = time.perf_counter()
        n_batches = 0
        for step in range(len(mixture.order) // batch):
            mixture.order[step * batch : (step + 1) * batch].copy()
            n_batches += 1
        walked = time.perf_counter() - start
        loader = MixtureLoader(pool, mixture, batch_size=batch)
        start = time.perf_counter()
        for step in range(1000):
            loader.batch(step)
        read = time.perf_counter() - start
        index_mb = (mixture.order.nbytes + mixture.repeated_ids.nbytes) / 1e6
        print(f"10^9-token mixture, context {context}: {len(mixture.order):,} sequences, index {index_mb:.1f} MB")
        print(f"  build order + repeated ids: {built:.2f} s")
        print(f"  walk the whole index ({n_batches:,} batches of {batch}): {walked:.2f} s")
        print(f"  read 1,000 batches of rows through the memmap: {read:.2f} s ({1000 * batch * context / read / 1e6:.1f}M tokens/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--context", type=int, default=1024)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    tokenisation(args.vocab_size)
    billion_token_index(args.context)


if __name__ == "__main__":
    main()
