"""Count every in-document token window of length N, exactly, with memory bounded by hash buckets.

Each window gets two independent polynomial hashes modulo 2^64 over a random substitution table
(64 bits used to group, 32 more to check), computed for a whole chunk at once with prefix sums:
``h(p) = (S[p+N] - S[p]) * B^-p`` where ``S`` is the cumulative sum of ``T[x_t] B^t`` (B odd, so
invertible modulo 2^64). Windows are partitioned by the top bits of the first hash into buckets,
spilled to disk when there is more than one, and each bucket is grouped with a hash table
(``pandas.factorize``), so the working set is one bucket, not the corpus.

Exactness: two different windows are merged only if both hashes collide (96 bits: for 10^9 distinct
windows the chance of any such pair is below 10^-11, treating the hashes as random). A collision of
the 64-bit grouping hash alone is detected by the check hash and split. Polynomial hashes modulo 2^64
have one known adversarial weakness, Thue-Morse-like strings of 2^11 or more tokens, which natural
text does not contain; use the suffix array if spans that long built by an adversary matter. The suffix-array counter (``spans_sa``) is the reference, and the
tests compare the two position by position.

Memory: the output (4 bytes per token) plus one bucket (about 48 bytes per window in it, capped by
``bucket_mb``) plus chunk buffers; spill files take about 16 bytes per token on disk.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from repeatlab.audit.stream import TokenStream, window_mask

_CHUNK = 1 << 20  # positions hashed at once: 8 MB buffers, small enough for malloc to recycle
_BYTES_PER_BUCKET_RECORD = 48  # h1 + h2 + pos + sort order + factorize codes + hash-table share
_SUB_RECORDS = 1 << 16  # records per hash table when grouping a bucket


def count_windows_hashed(
    stream: TokenStream,
    span: int,
    *,
    bucket_mb: int = 2048,
    tmp_dir: str | Path | None = None,
    seed: int = 0,
) -> NDArray[np.uint32]:
    """Per position, how many times the ``span``-token window starting there occurs in the corpus.

    0 where the window would leave its document (or the corpus); 1 for a unique window.
    """
    n = stream.n_tokens
    counts = np.zeros(n, np.uint32)
    n_windows = max(n - span + 1, 0)
    if n_windows == 0:
        return counts
    n_buckets = _bucket_count(n_windows, bucket_mb)
    hasher = _WindowHasher(stream.vocab_size, span, seed)
    pos_dtype = np.dtype(np.uint32) if n < 2**32 else np.dtype(np.int64)
    with tempfile.TemporaryDirectory(dir=tmp_dir, prefix="repeatlab-audit-") as spill_dir:
        spill = _Spill(n_buckets, Path(spill_dir))
        for start in range(0, n_windows, _CHUNK):
            stop = min(start + _CHUNK, n_windows)
            h1, h2 = hasher.hash(stream.tokens[start : stop + span - 1])
            keep = np.flatnonzero(window_mask(stream.doc_offsets, start, stop, span))
            spill.add(h1[keep], h2[keep], (keep + start).astype(pos_dtype))
        for bucket in range(n_buckets):
            h1, h2, pos = spill.read(bucket)
            if h1.size:
                counts[pos] = _group_sizes(h1, h2, spill.bits)
    return counts


def _bucket_count(n_windows: int, bucket_mb: int) -> int:
    """A power of two so that one bucket's records fit in ``bucket_mb``."""
    need = n_windows * _BYTES_PER_BUCKET_RECORD / (bucket_mb * 2**20)
    return 1 << min(16, max(0, math.ceil(math.log2(max(need, 1.0)))))


def _group_sizes(h1: NDArray[np.uint64], h2: NDArray[np.uint32], used_bits: int = 0) -> NDArray[np.uint32]:
    """Size of each record's group of equal (h1, h2).

    Large inputs are first split by the h1 bits below the ``used_bits`` top bits that chose their
    bucket, so that each hash table fits in cache: grouping 2^24 records in one table is several
    times slower than in 2^8 tables of 2^16. The spill already sorted every chunk's records by the
    top 16 bits, so for the usual sizes this split merges sorted runs and its gathers stream.
    """
    sub_bits = max(0, min(16, math.ceil(math.log2(max(h1.shape[0] / _SUB_RECORDS, 1.0)))))
    if sub_bits == 0:
        return _group_sizes_table(h1, h2)
    n_sub = 1 << sub_bits
    shift = np.uint64(64 - used_bits - sub_bits)
    sub = ((h1 >> shift) & np.uint64(n_sub - 1)).astype(np.uint16)
    order = np.argsort(sub, kind="stable")
    bounds = np.zeros(n_sub + 1, np.int64)
    np.cumsum(np.bincount(sub, minlength=n_sub), out=bounds[1:])
    h1, h2 = h1[order], h2[order]
    sizes = np.empty(h1.shape[0], np.uint32)
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        if hi > lo:
            sizes[order[lo:hi]] = _group_sizes_table(h1[lo:hi], h2[lo:hi])
    return sizes


def _group_sizes_table(h1: NDArray[np.uint64], h2: NDArray[np.uint32]) -> NDArray[np.uint32]:
    """Group sizes with one hash table (``pandas.factorize``), splitting 64-bit collisions by h2."""
    codes, uniques = pd.factorize(h1)
    n_codes = len(uniques)
    check = np.empty(n_codes, np.uint32)
    check[codes] = h2
    clash = check[codes] != h2
    if clash.any():
        # The 64-bit key collided for different windows: regroup those records by (code, h2).
        hit = np.isin(codes, np.unique(codes[clash]))
        key = (codes[hit].astype(np.uint64) << np.uint64(32)) | h2[hit].astype(np.uint64)
        sub_codes, sub_uniques = pd.factorize(key)
        codes[hit] = sub_codes + n_codes
        n_codes += len(sub_uniques)
    sizes = np.bincount(codes, minlength=n_codes)
    return sizes[codes].astype(np.uint32)


class _WindowHasher:
    """Two rolling hashes of every ``span``-window of a chunk, with preallocated buffers.

    Buffers are reused because first-touch page faults, not arithmetic, dominate fresh numpy
    allocations at this size.
    """

    def __init__(self, vocab_size: int, span: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        size = _CHUNK + span
        self.span = span
        self.tables = [np.frombuffer(rng.bytes(8 * vocab_size), np.uint64).copy() for _ in range(2)]
        bases = [int.from_bytes(rng.bytes(8), "little") | 1 for _ in range(2)]
        self.powers = [_powers(b, size) for b in bases]
        self.inverse_powers = [_powers(pow(b, -1, 2**64), size) for b in bases]
        self._y = np.empty(size, np.uint64)
        self._s = np.empty(size + 1, np.uint64)
        self._h = [np.empty(size, np.uint64) for _ in range(2)]

    def hash(self, x: NDArray[np.unsignedinteger]) -> tuple[NDArray[np.uint64], NDArray[np.uint32]]:
        """(64-bit grouping hash, 32-bit check hash) of each window of ``x`` (len(x) - span + 1 of them)."""
        length, n_out = x.shape[0], x.shape[0] - self.span + 1
        y, s = self._y[:length], self._s[: length + 1]
        out = []
        for k in range(2):
            np.take(self.tables[k], x, out=y)
            y *= self.powers[k][:length]
            s[0] = 0
            np.cumsum(y, out=s[1:])
            h = self._h[k][:n_out]
            np.subtract(s[self.span :], s[:n_out], out=h)
            h *= self.inverse_powers[k][:n_out]
            out.append(h)
        return out[0], (out[1] >> np.uint64(32)).astype(np.uint32)


def _powers(base: int, size: int) -> NDArray[np.uint64]:
    """base^0 .. base^(size-1) modulo 2^64 (numpy's uint64 products wrap, which is the modulo)."""
    out = np.full(size, base, np.uint64)
    out[0] = 1
    return np.cumprod(out, out=out)


class _Spill:
    """Records partitioned by the top bits of h1: kept in memory for one bucket, else appended to files.

    Each chunk's records are sorted by the top 16 bits of h1 (a radix sort), which both splits them
    into buckets and leaves each bucket as a few sorted runs for ``_group_sizes`` to merge.
    """

    def __init__(self, n_buckets: int, directory: Path) -> None:
        self.n_buckets = n_buckets
        self.bits = int(math.log2(n_buckets))
        self.directory = directory
        self.memory: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.pos_dtype = np.dtype(np.uint32)

    def add(self, h1: np.ndarray, h2: np.ndarray, pos: np.ndarray) -> None:
        self.pos_dtype = pos.dtype
        top = (h1 >> np.uint64(48)).astype(np.uint16)
        order = np.argsort(top, kind="stable")  # radix sort on 16-bit keys; stable keeps positions ascending
        columns = (h1[order], h2[order], pos[order])
        if self.n_buckets == 1:
            self.memory.append(columns)
            return
        bounds = np.zeros(self.n_buckets + 1, np.int64)
        np.cumsum(np.bincount(top >> np.uint16(16 - self.bits), minlength=self.n_buckets), out=bounds[1:])
        for b in range(self.n_buckets):
            lo, hi = bounds[b], bounds[b + 1]
            if hi > lo:
                for name, column in zip(("h1", "h2", "pos"), columns, strict=True):
                    with open(self.directory / f"{b}.{name}", "ab") as handle:
                        column[lo:hi].tofile(handle)

    def read(self, bucket: int) -> tuple[NDArray[np.uint64], NDArray[np.uint32], np.ndarray]:
        empty = (np.zeros(0, np.uint64), np.zeros(0, np.uint32), np.zeros(0, self.pos_dtype))
        if self.n_buckets == 1:
            if not self.memory:
                return empty
            parts = list(zip(*self.memory, strict=True))
            self.memory = []
            return np.concatenate(parts[0]), np.concatenate(parts[1]), np.concatenate(parts[2])
        files = [self.directory / f"{bucket}.{name}" for name in ("h1", "h2", "pos")]
        if not files[0].exists():
            return empty
        out = (
            np.fromfile(files[0], np.uint64),
            np.fromfile(files[1], np.uint32),
            np.fromfile(files[2], self.pos_dtype),
        )
        for file in files:
            file.unlink()
        return out
