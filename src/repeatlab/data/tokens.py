"""Tokenizers: a byte-level BPE trained on the training documents, and a plain byte tokenizer.

Both are Hugging Face ``tokenizers`` objects saved as ``tokenizer.json``, so they load in
``transformers.PreTrainedTokenizerFast`` and export with a model. The end-of-text token
separates documents when they are packed into sequences.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from repeatlab.errors import RepeatlabError
from repeatlab.io import atomic_write_text

EOT = "<|endoftext|>"
BYTE_VOCAB_SIZE = 257  # 256 bytes + end-of-text
_MIN_BPE_VOCAB = 300


class TextTokenizer:
    """A ``tokenizers.Tokenizer`` with an end-of-text token and numpy-friendly batch encoding."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        eot_id = tokenizer.token_to_id(EOT)
        if eot_id is None:
            raise RepeatlabError(f"tokenizer has no {EOT!r} token; train it with repeatlab or add that special token")
        # A document that happens to contain the literal end-of-text string must not split in two.
        tokenizer.encode_special_tokens = True
        self.tokenizer = tokenizer
        self.eot_id: int = eot_id

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Encode in parallel (Rust threads); an end-of-text string inside a text stays plain text."""
        return [e.ids for e in self.tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)]

    def encode(self, text: str) -> list[int]:
        return self.encode_batch([text])[0]

    def decode(self, ids: Iterable[int]) -> str:
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=False)

    def pack(self, texts: Sequence[str]) -> np.ndarray:
        """Encode documents and concatenate them, each followed by the end-of-text token."""
        encoded = self.encode_batch(texts)
        lengths = np.fromiter((len(ids) + 1 for ids in encoded), dtype=np.int64, count=len(encoded))
        out = np.empty(int(lengths.sum()), dtype=np.int64)
        ends = np.cumsum(lengths)
        for ids, end, length in zip(encoded, ends, lengths, strict=True):
            out[end - length : end - 1] = ids
        out[ends - 1] = self.eot_id
        return out

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, self.tokenizer.to_str())


def train_bpe(documents: Iterable[str], vocab_size: int) -> TextTokenizer:
    """Train a byte-level BPE (GPT-2 style pre-tokenisation) with ``vocab_size`` tokens incl. end-of-text."""
    if vocab_size < _MIN_BPE_VOCAB:
        raise RepeatlabError(
            f"vocab_size={vocab_size} is too small for BPE (minimum {_MIN_BPE_VOCAB}); "
            f"use the byte tokenizer for tiny vocabularies"
        )
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(documents, trainer=trainer)
    return TextTokenizer(tokenizer)


def byte_tokenizer() -> TextTokenizer:
    """One token per UTF-8 byte (id = byte value) plus end-of-text (id 256); needs no training."""
    byte_to_char = _bytes_to_unicode()
    vocab = {byte_to_char[b]: b for b in range(256)}
    vocab[EOT] = 256
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([EOT])
    return TextTokenizer(tokenizer)


def load_tokenizer(path: str | Path) -> TextTokenizer:
    """Load a ``tokenizer.json``, or the literal ``byte`` for the byte tokenizer."""
    if str(path) == "byte":
        return byte_tokenizer()
    path = Path(path)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise FileNotFoundError(f"tokenizer file {path} does not exist")
    try:
        return TextTokenizer(Tokenizer.from_file(str(path)))
    except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
        if isinstance(exc, RepeatlabError):
            raise
        raise RepeatlabError(f"{path} is not a valid tokenizer.json ({exc})") from None


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 where every id fits, else uint32: halves disk and page cache for common vocabularies."""
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable-character map, as used by the ByteLevel pre-tokenizer."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, chars, strict=True)}
