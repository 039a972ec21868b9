"""Synthetic data where in-context copying pays, written as a small-vocabulary prepared dataset.

It exists to study the induction-head phase change on a CPU in seconds (``tests/dynamics/test_phase_change.py``,
``experiments/phase_change_repetition.py``): on natural text tiny models form no induction heads.

Tokens are 31 letters (ids 0..30) and end-of-text (id 31). Each document is ``INDUCTION_CONTEXT - 1`` letters, so with
its end-of-text token it fills exactly one training window (windows start on document boundaries). Letters
are uniform, except that with probability ``SKIP_P`` a letter is ``PI[letter two back]`` (a fixed
permutation), which rewards a previous-token head in layer 0 directly; then one span of 6..15 letters is
copied to a later position of the same document. Predicting the copy takes an induction circuit: a layer-0
previous-token head composed with a layer-1 head that attends to the letter after an earlier occurrence of
the current one.

What was measured on CPU before settling on this (``attn-only-tiny-2l``, batch 32, seeded):

* Without the ``PI`` incentive (plain random letters with copied spans) no layer-1 induction head formed within
  5,000 steps: the loss plateaus on in-context unigram statistics or on positional "look back k" heads in layer 0.
* The dataset's byte tokenizer (257 ids, 226 never seen) slowed the previous-token head about fourfold, hence
  this 32-token vocabulary written directly (``meta.json``, token files, a character ``tokenizer.json``).
* With this data the phase change comes after 1,500..2,500 steps depending on the seed, and on some seeds the
  copying the model learns is keyed on the ``PI`` structure and never shows on the probe's random sequences.
  The test uses one seeded configuration (data seed 0, mixture seed 0, 2,000 steps at lr 4e-3) whose layer-1
  induction score jumps from 0.14 to 0.71 between steps 1,800 and 2,000; runs are bitwise deterministic on CPU.
* Layer-0 heads also learn a positional "look back about half a context" pattern (induction score ~0.3 on
  the probe, whose repeats are half a context apart), since the copy offsets cluster there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, models

from repeatlab.data.tokens import EOT, TextTokenizer
from repeatlab.io import atomic_directory, write_json

INDUCTION_CONTEXT = 32
N_LETTERS = 31
EOT_ID = N_LETTERS
SKIP_P = 0.2
SPAN = (6, 15)


def induction_documents(n: int, seed: int) -> np.ndarray:
    """``[n, INDUCTION_CONTEXT - 1]`` letter ids (see the module docstring)."""
    rng = np.random.default_rng(seed)
    pi = np.random.default_rng(99).permutation(N_LETTERS)
    length = INDUCTION_CONTEXT - 1
    docs = rng.integers(0, N_LETTERS, (n, length))
    skip = rng.random((n, length)) < SKIP_P
    for t in range(2, length):
        docs[skip[:, t], t] = pi[docs[skip[:, t], t - 2]]
    for x in docs:
        k = int(rng.integers(SPAN[0], SPAN[1] + 1))
        gap = int(rng.integers(0, length + 1 - 2 * k))
        start = int(rng.integers(0, length + 1 - 2 * k - gap))
        x[start + k + gap : start + 2 * k + gap] = x[start : start + k]
    return docs


def letter_tokenizer() -> TextTokenizer:
    """Characters ``A..Z a..e`` as ids 0..30 and end-of-text as 31."""
    letters = [chr(c) for c in range(ord("A"), ord("Z") + 1)] + [chr(c) for c in range(ord("a"), ord("f"))]
    vocab = {ch: i for i, ch in enumerate(letters)} | {EOT: EOT_ID}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.add_special_tokens([EOT])
    return TextTokenizer(tokenizer)


def write_induction_dataset(out: Path, *, n_train: int, n_test: int, seed: int = 0) -> Path:
    """A prepared dataset of ``n_train`` + ``n_test`` documents at ``out`` (built atomically), for ``load_prepared``."""
    meta: dict[str, object] = {
        "kind": "prepared", "source": f"synthetic-induction:{seed}", "tokenizer": "letters",
        "vocab_size": N_LETTERS + 1,
        "eot_id": EOT_ID, "dtype": "uint16", "context": INDUCTION_CONTEXT, "seed": seed,
        "n_documents": n_train + n_test, "n_train_removed_as_test_duplicates": 0,
    }
    with atomic_directory(out) as tmp:
        for split, n, split_seed in (("train", n_train, seed), ("test", n_test, seed + 10_000)):
            docs = induction_documents(n, split_seed)
            tokens = np.concatenate([docs, np.full((n, 1), EOT_ID)], axis=1).reshape(-1).astype(np.uint16)
            tokens.tofile(tmp / f"{split}.bin")
            meta[split] = {"n_documents": n, "n_tokens": len(tokens), "n_chars": n * (INDUCTION_CONTEXT - 1),
                           "n_sequences": (len(tokens) - 1) // INDUCTION_CONTEXT}
        letter_tokenizer().save(tmp / "tokenizer.json")
        write_json(tmp / "meta.json", meta)
    return Path(out)
