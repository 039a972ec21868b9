"""The per-document stage: digests, MinHash signatures and token ids for a batch of documents.

Everything here is a pure function of one batch, so batches can run anywhere (this process or a Ray
task, see ``ray_scan``) and be merged in corpus order. Only the span stage needs the whole corpus.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from repeatlab.audit.config import AuditConfig
from repeatlab.audit.exact import document_digests
from repeatlab.audit.minhash import shingle_hashes, signatures
from repeatlab.audit.stream import TokenStream, concat_streams, stream_dtype
from repeatlab.data.corpus import iter_documents
from repeatlab.data.tokens import TextTokenizer, load_tokenizer


@dataclass(frozen=True)
class BatchScan:
    """What the later stages need from one batch of documents."""

    digests: NDArray[np.uint8]
    """``(n, 16)`` BLAKE2b digests of the UTF-8 text."""
    signatures: NDArray[np.uint32]
    """``(n, num_perm)`` MinHash signatures of the word shingles."""
    stream: TokenStream
    n_bytes: int


def iter_batches(source: str | Path, config: AuditConfig) -> Iterator[list[str]]:
    """Documents of ``source`` in corpus order, grouped into batches of about ``batch_mb`` MB."""
    limit = config.batch_mb * 2**20
    batch: list[str] = []
    size = 0
    for text in iter_documents(source, text_field=config.text_field):
        batch.append(text)
        size += len(text)
        if size >= limit:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def scan_batch(texts: list[str], config: AuditConfig) -> BatchScan:
    """Digest, MinHash and tokenise one batch."""
    encoded = [t.encode("utf-8") for t in texts]
    near = config.near_dup
    hashes, bounds = shingle_hashes(encoded, near.shingle_size)
    return BatchScan(
        digests=document_digests(encoded),
        signatures=signatures(hashes, bounds, near.num_perm, near.seed),
        stream=tokenize(texts, encoded, config.tokenizer),
        n_bytes=sum(len(e) for e in encoded),
    )


def tokenize(texts: list[str], encoded: list[bytes], tokenizer: str) -> TokenStream:
    """Token ids without separators. ``byte`` ids are the UTF-8 bytes themselves (what
    ``byte_tokenizer().encode`` returns), read straight from the encoded text."""
    if tokenizer == "byte":
        tokens = np.frombuffer(b"".join(encoded), np.uint8)
        lengths = np.fromiter((len(e) for e in encoded), np.int64, count=len(encoded))
        vocab_size = 256
    else:
        tok = _load(tokenizer)
        ids = tok.encode_batch(texts)
        vocab_size = tok.vocab_size
        lengths = np.fromiter((len(i) for i in ids), np.int64, count=len(ids))
        tokens = np.fromiter((t for doc in ids for t in doc), stream_dtype(vocab_size), count=int(lengths.sum()))
    offsets = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return TokenStream(tokens, offsets, vocab_size)


@functools.lru_cache(maxsize=4)
def _load(tokenizer: str) -> TextTokenizer:
    """One tokenizer per process (Ray workers load it once, not per batch)."""
    return load_tokenizer(tokenizer)


def decoder(tokenizer: str) -> TextTokenizer:
    """The tokenizer that turns span ids back into text (``byte`` included)."""
    return _load(tokenizer)


def merge_batches(parts: list[BatchScan], num_perm: int) -> BatchScan:
    """Concatenate batch results in corpus order."""
    vocab_size = parts[0].stream.vocab_size if parts else 256
    return BatchScan(
        digests=np.concatenate([p.digests for p in parts]) if parts else np.zeros((0, 16), np.uint8),
        signatures=np.concatenate([p.signatures for p in parts]) if parts else np.zeros((0, num_perm), np.uint32),
        stream=concat_streams([p.stream for p in parts], vocab_size),
        n_bytes=sum(p.n_bytes for p in parts),
    )
