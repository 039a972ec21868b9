"""Corpus-audit throughput: MB/s and peak memory on the built-in corpus and on a synthetic corpus.

Prints (never asserts), per corpus: MB of UTF-8 text, documents, total seconds and MB/s, seconds per
stage (scan = read + digests + MinHash + tokens; exact; near; span_counts; span_stats) and the peak
resident memory of the process that ran the audit (each audit runs in a fresh subprocess so one
measurement does not inherit another's peak), and its CPU seconds: on a shared machine MB per
CPU-second is the steadier figure (with ``--backend ray`` the workers' CPU time is not included).

The synthetic corpus (default 1024 MB, Parquet) is Zipf-distributed random words in documents of
about 3 KB, with planted repetition: 1% of documents are exact copies, 1% are near-copies (two words
changed) and 5% end with one of 100 boilerplate paragraphs whose use follows a Zipf law.

Usage: python benchmarks/audit_speed.py [--synthetic-mb 1024] [--backend local|ray] [--skip-builtin]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

_WORDS_PER_DOC = 500


def make_synthetic(path: Path, megabytes: int, seed: int = 0) -> None:
    """Write about ``megabytes`` MB of synthetic documents with planted repetition to a Parquet file."""
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", np.uint8)
    vocab = [bytes(rng.choice(letters, size=int(rng.integers(2, 11)))) + b" " for _ in range(50_000)]
    lengths = np.array([len(w) for w in vocab], np.int64)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    blob = np.frombuffer(b"".join(vocab), np.uint8)
    cdf = np.cumsum(1.0 / np.arange(1, len(vocab) + 1) ** 1.1)
    cdf /= cdf[-1]
    boilerplate = [b" ".join(vocab[i].strip() for i in rng.integers(0, len(vocab), 60)) for _ in range(100)]
    boiler_cdf = np.cumsum(1.0 / np.arange(1, 101) ** 1.2)
    boiler_cdf /= boiler_cdf[-1]
    writer = None
    written = 0
    try:
        while written < megabytes * 1e6:
            ids = np.searchsorted(cdf, rng.random(_WORDS_PER_DOC * 4000))
            word_len = lengths[ids]
            out_start = np.concatenate(([0], np.cumsum(word_len)[:-1]))
            offset = np.repeat(starts[ids] - out_start, word_len)
            text = blob[offset + np.arange(offset.shape[0])]
            bounds = [*out_start[::_WORDS_PER_DOC].tolist(), text.shape[0]]
            raw = text.tobytes()
            docs = [raw[a:b] for a, b in itertools.pairwise(bounds)]
            for i in range(len(docs)):
                roll = rng.random()
                if roll < 0.01 and i > 0:
                    docs[i] = docs[int(rng.integers(0, i))]
                elif roll < 0.02 and i > 0:
                    words = docs[int(rng.integers(0, i))].split(b" ")
                    for j in rng.integers(0, len(words), 2):
                        words[j] = b"changed"
                    docs[i] = b" ".join(words)
                elif roll < 0.07:
                    docs[i] = docs[i] + b"\n" + boilerplate[int(np.searchsorted(boiler_cdf, rng.random()))]
            table = pa.table({"text": pa.array(docs, type=pa.binary()).cast(pa.string())})
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table, row_group_size=4000)
            written += sum(len(d) for d in docs)
    finally:
        if writer is not None:
            writer.close()


def run_case(source: str, backend: str, tmp_dir: str | None) -> dict[str, object]:
    """Audit ``source`` in this process and return the figures."""
    from repeatlab.audit import AuditConfig, audit_corpus

    start = time.perf_counter()
    report = audit_corpus(source, AuditConfig(backend=backend, tmp_dir=tmp_dir))  # type: ignore[arg-type]
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "megabytes": report.n_bytes / 1e6,
        "documents": report.n_documents,
        "seconds": seconds,
        "stages": report.timings_s,
        "peak_rss_mb": report.peak_rss_mb,
        "repeated_share": report.spans.repeated_token_share,
        "exact_redundant": report.exact.n_redundant_documents,
        "near_docs": report.near.n_documents_in_clusters,
    }


def measure(label: str, source: str, backend: str, tmp_dir: str | None) -> None:
    """Run one case in a fresh interpreter and print its line."""
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import audit_speed; "
        "print(json.dumps(audit_speed.run_case(sys.argv[2], sys.argv[3], sys.argv[4] or None)))"
    )
    args = [sys.executable, "-c", code, str(Path(__file__).parent), source, backend, tmp_dir or ""]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"{label}: failed\n{done.stderr[-2000:]}")
        return
    r = json.loads(done.stdout.strip().splitlines()[-1])
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in r["stages"].items())
    print(
        f"{label}: {r['megabytes']:.1f} MB, {r['documents']:,} docs, {r['seconds']:.1f} s, "
        f"{r['megabytes'] / r['seconds']:.2f} MB/s, peak RSS {r['peak_rss_mb'] / 1024:.2f} GiB; "
        f"{r['cpu_seconds']:.0f} CPU s ({r['megabytes'] / r['cpu_seconds']:.2f} MB per CPU-second; "
        f"load average {os.getloadavg()[0]:.1f})\n"
        f"  stages: {stages}\n"
        f"  found: {100 * r['repeated_share']:.2f}% of tokens in repeated 50-byte spans, "
        f"{r['exact_redundant']:,} redundant exact copies, {r['near_docs']:,} docs in near-dup clusters"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic-mb", type=int, default=1024)
    parser.add_argument("--backend", choices=["local", "ray"], default="local")
    parser.add_argument("--skip-builtin", action="store_true")
    parser.add_argument("--tmp-dir", default=None, help="spill directory for the span stage")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; backend {args.backend}")
    if not args.skip_builtin:
        measure("builtin", "builtin", args.backend, args.tmp_dir)
    if args.synthetic_mb > 0:
        with tempfile.TemporaryDirectory(dir=args.tmp_dir) as tmp:
            path = Path(tmp) / "synthetic.parquet"
            start = time.perf_counter()
            make_synthetic(path, args.synthetic_mb)
            print(f"generated {path.stat().st_size / 1e6:.0f} MB Parquet in {time.perf_counter() - start:.0f} s")
            measure(f"synthetic {args.synthetic_mb} MB", str(path), args.backend, args.tmp_dir)


if __name__ == "__main__":
    main()
