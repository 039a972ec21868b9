"""Turn a corpus into a prepared dataset: test split by document, tokenizer, packed token memmaps.

The test split is drawn *before* anything can be repeated, and every training document whose
exact text also occurs in the test split is removed (and counted), so test loss is clean. The
tokenizer is trained on the training documents, or copied from another prepared dataset
(``tokenizer_from``) so that token ids mean the same in both and a model trained on one can be
fine-tuned or evaluated on the other.
"""

from __future__ import annotations

import hashlib
import platform
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np

from repeatlab.config import added_later, check_context, check_seed, check_vocab_size, to_dict
from repeatlab.data.classification import TASK_KIND, ClassificationTask, write_classification_dataset
from repeatlab.data.regression import TASK_KIND as REGRESSION_KIND
from repeatlab.data.regression import RegressionTask, write_regression_dataset
from repeatlab.data.corpus import load_corpus
from repeatlab.data.prepared import META_FILE, TOKENIZER_FILE, PreparedDataset, load_prepared, n_sequences_for
from repeatlab.data.tokens import TextTokenizer, byte_tokenizer, token_dtype, train_bpe
from repeatlab.errors import RepeatlabError
from repeatlab.io import atomic_directory, check_output_dir, output_lock, write_json

_ENCODE_CHUNK_DOCS = 2048


@dataclass(kw_only=True, frozen=True)
class PrepareConfig:
    """How to turn a corpus source into a prepared dataset."""

    source: str = "builtin"
    """Corpus source (see ``repeatlab.data.corpus``), or ``classification`` for the synthetic in-context
    classification task (``repeatlab.data.classification``; no corpus, no tokenizer training), or ``regression``
    for in-context linear regression (``repeatlab.data.regression``: vectors, no tokens)."""
    text_field: str = "text"
    """Field/column holding the text in JSONL, Parquet and hf: sources."""
    tokenizer: Literal["bpe", "byte"] = "bpe"
    """``bpe``: byte-level BPE trained on the training documents; ``byte``: one token per byte."""
    vocab_size: int = 8192
    """BPE vocabulary size including the end-of-text token (ignored for ``byte``)."""
    context: int = 256
    """Tokens per training sequence (the model's context window)."""
    test_fraction: float = 0.05
    """Share of documents held out as the clean test split."""
    seed: int = 0
    """Seed of the document split."""
    tokenizer_from: str | None = None
    """A prepared dataset directory whose tokenizer is copied instead of training one, so token ids mean the
    same in both datasets (to fine-tune or evaluate a model trained there). ``tokenizer`` and ``vocab_size``
    left at their defaults take that dataset's values; any other value must equal them."""
    classification: ClassificationTask | None = added_later(None)
    """The task's parameters when ``source = "classification"`` (the defaults when omitted); ``context`` must
    then be the task's ``2 n_pairs + 1``."""

    regression: RegressionTask | None = added_later(None)
    """The task's parameters when ``source = "regression"`` (the defaults when omitted); ``context`` must then be
    the task's ``n_pairs + 1``."""

    def __post_init__(self) -> None:
        if self.source == TASK_KIND:
            task = self.classification_task
            if self.context != task.context:
                raise RepeatlabError(f"context must be {task.context} for the in-context classification task "
                                 f"(2 n_pairs + 1 tokens per sequence), got {self.context}")
        elif self.classification is not None:
            raise RepeatlabError(f"classification parameters were given but source is {self.source!r}; set "
                             f"source = {TASK_KIND!r} or remove them")
        if self.source == REGRESSION_KIND:
            if self.context != self.regression_task.context:
                raise RepeatlabError(f"context must be {self.regression_task.context} for the in-context regression "
                                     f"task (n_pairs + 1 vectors per sequence), got {self.context}")
        elif self.regression is not None:
            raise RepeatlabError(f"regression parameters were given but source is {self.source!r}; set "
                                 f"source = {REGRESSION_KIND!r} or remove them")
        if self.tokenizer_from is not None and (not isinstance(self.tokenizer_from, str)
                                                or not self.tokenizer_from.strip()):
            raise RepeatlabError(
                f"tokenizer_from must be a prepared dataset directory or null, got {self.tokenizer_from!r}"
            )
        check_context("context", self.context, low=2)
        if not 0.0 < self.test_fraction < 1.0:
            raise RepeatlabError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        check_seed("seed", self.seed)
        if self.tokenizer == "bpe":
            check_vocab_size("vocab_size of a BPE tokenizer", self.vocab_size, low=300)

    @property
    def classification_task(self) -> ClassificationTask:
        """The in-context classification task of a ``classification`` source."""
        return self.classification or ClassificationTask()

    @property
    def regression_task(self) -> RegressionTask:
        """The in-context regression task of a ``regression`` source."""
        return self.regression or RegressionTask()


@dataclass(frozen=True)
class DocumentSplit:
    """Indices of the corpus documents in each split, in packing order."""

    train: np.ndarray
    test: np.ndarray
    n_train_removed_as_test_duplicates: int


def split_documents(documents: Sequence[str], test_fraction: float, seed: int) -> DocumentSplit:
    """Seeded split by document; training documents equal to a test document are dropped."""
    n = len(documents)
    n_test = int(round(test_fraction * n))
    if n_test < 1 or n - n_test < 1:
        raise RepeatlabError(
            f"corpus too small for the asked split: {n} documents with test_fraction={test_fraction} "
            f"leaves {n_test} test and {n - n_test} training documents; add documents or change --test-fraction"
        )
    order = np.random.default_rng(seed).permutation(n)
    test, train = order[:n_test], order[n_test:]
    test_texts = {documents[i] for i in test}
    keep = np.fromiter((documents[i] not in test_texts for i in train), dtype=bool, count=len(train))
    return DocumentSplit(train=train[keep], test=test, n_train_removed_as_test_duplicates=int((~keep).sum()))


def prepare_dataset(
    config: PrepareConfig,
    out: str | Path,
    *,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> PreparedDataset:
    """Read, split, tokenize and pack a corpus into ``out``; nothing is left at ``out`` on error.

    ``out`` is checked and locked (one writer) before the corpus is read.
    """
    check_output_dir(out, exists_ok=overwrite)
    with output_lock(out):
        return _prepare_locked(config, Path(out), overwrite=overwrite, say=progress or (lambda _msg: None))


def _prepare_locked(config: PrepareConfig, out: Path, *, overwrite: bool, say: Callable[[str], None]) -> PreparedDataset:
    if config.source == TASK_KIND:
        task = config.classification_task
        say(f"writing the in-context classification task: {task.n_train_sequences:,} training sequences of "
            f"{task.context} tokens")
        return load_prepared(write_classification_dataset(task, out, overwrite=overwrite, config=to_dict(config)))
    if config.source == REGRESSION_KIND:
        regression = config.regression_task
        say(f"writing the in-context regression task: {regression.n_train_sequences:,} training sequences of "
            f"{regression.context} vectors of width {regression.d_vector}")
        return load_prepared(write_regression_dataset(regression, out, overwrite=overwrite, config=to_dict(config)))
    started = time.perf_counter()
    source = tokenizer_source(config)  # checked before the (possibly long) corpus read
    if source is not None and source.context != config.context:
        say(f"note: context {config.context} differs from the {source.context} of {source.path}, so a model "
            f"trained there cannot be fine-tuned on this dataset (prepare with --context {source.context} for that)")
    corpus = load_corpus(config.source, text_field=config.text_field)
    say(f"read {corpus.n_documents:,} documents ({corpus.n_chars / 1e6:.1f}M characters) from {corpus.source}")
    split = split_documents(corpus.documents, config.test_fraction, config.seed)
    train_docs = [corpus.documents[i] for i in split.train]
    test_docs = [corpus.documents[i] for i in split.test]
    tokenizer, kind = _make_tokenizer(config, source, train_docs, say)
    dtype = token_dtype(tokenizer.vocab_size)
    with atomic_directory(out, overwrite=overwrite) as tmp:
        stats = {}
        for name, docs in (("train", train_docs), ("test", test_docs)):
            n_tokens = _write_tokens(tokenizer, docs, tmp / f"{name}.bin", dtype)
            n_seq = n_sequences_for(n_tokens, config.context)
            if n_seq < 1:
                raise RepeatlabError(
                    f"corpus too small for the asked split: the {name} split has {n_tokens} tokens, fewer than "
                    f"one sequence of context {config.context} + 1; use a smaller --context or a larger corpus"
                    + (" or --test-fraction" if name == "test" else "")
                )
            stats[name] = {
                "n_documents": len(docs),
                "n_tokens": n_tokens,
                "n_sequences": n_seq,
                "n_chars": sum(len(d) for d in docs),
            }
            say(f"{name}: {len(docs):,} documents, {n_tokens:,} tokens, {n_seq:,} sequences")
        if source is not None:
            # A byte-exact copy: fine-tuning compares the two datasets' tokenizer files.
            shutil.copyfile(source.path / TOKENIZER_FILE, tmp / TOKENIZER_FILE)
        else:
            tokenizer.save(tmp / TOKENIZER_FILE)
        meta = {
            "kind": "prepared",
            "source": corpus.source,
            "config": to_dict(config),
            "tokenizer": kind,
            "tokenizer_from": _provenance(source),
            "vocab_size": tokenizer.vocab_size,
            "eot_id": tokenizer.eot_id,
            "dtype": dtype.name,
            "context": config.context,
            "seed": config.seed,
            "n_documents": corpus.n_documents,
            "python": platform.python_version(),  # the python-stdlib source differs between versions
            "n_train_removed_as_test_duplicates": split.n_train_removed_as_test_duplicates,
            "train": stats["train"],
            "test": stats["test"],
            "seconds": round(time.perf_counter() - started, 3),
        }
        write_json(tmp / "meta.json", meta)
    return load_prepared(out)


def tokenizer_source(config: PrepareConfig) -> PreparedDataset | None:
    """The dataset ``config.tokenizer_from`` names (``None`` without it), checked to hold a loadable
    tokenizer that agrees with the config's explicit ``tokenizer`` and ``vocab_size``."""
    if config.tokenizer_from is None:
        return None
    where = f"tokenizer_from {config.tokenizer_from}"
    path = Path(config.tokenizer_from)
    if not (path / META_FILE).is_file():
        raise FileNotFoundError(
            f"{where} is not a prepared dataset (no {META_FILE}); give the directory 'repeatlab data prepare' "
            f"wrote for the corpus whose tokenizer to reuse (e.g. the pre-trained run's --dataset)"
        )
    try:
        source = load_prepared(path)
    except ValueError as exc:
        raise RepeatlabError(f"tokenizer_from: {exc}; give a directory written by 'repeatlab data prepare'") from None
    kind, vocab_size = source.meta.get("tokenizer"), source.vocab_size  # load_prepared checked the tokenizer
    if not isinstance(kind, str):  # a hand-edited meta.json
        raise RepeatlabError(f"{where}: {META_FILE} names no tokenizer kind ({kind!r}); the dataset is corrupt: "
                             f"prepare it again")
    defaults = {f.name: f.default for f in fields(PrepareConfig)}
    conflicts = [f"{name}={asked!r}" for name, asked, theirs in
                 (("tokenizer", config.tokenizer, kind), ("vocab_size", config.vocab_size, vocab_size))
                 if asked != defaults[name] and asked != theirs]
    if conflicts:
        raise RepeatlabError(
            f"{where} has a {kind} tokenizer of {vocab_size:,} tokens, which conflicts with {' and '.join(conflicts)}; "
            f"leave tokenizer and vocab_size unset to reuse it, or drop tokenizer_from to train a new tokenizer"
        )
    return source


def _make_tokenizer(
    config: PrepareConfig, source: PreparedDataset | None, train_docs: Sequence[str], say: Callable[[str], None]
) -> tuple[TextTokenizer, str]:
    """The tokenizer and its kind: the source dataset's, a byte tokenizer, or a BPE trained on ``train_docs``."""
    if source is not None:
        say(f"reusing the {source.meta['tokenizer']} tokenizer ({source.vocab_size:,} tokens) of {source.path}")
        return source.tokenizer, str(source.meta["tokenizer"])
    if config.tokenizer == "byte":
        return byte_tokenizer(), "byte"
    say(f"training a {config.vocab_size:,}-token byte-level BPE on {len(train_docs):,} training documents")
    return train_bpe(train_docs, config.vocab_size), "bpe"


def _provenance(source: PreparedDataset | None) -> dict[str, Any] | None:
    """Where a reused tokenizer came from, with its file's hash to tell later whether the source changed."""
    if source is None:
        return None
    digest = hashlib.sha256((source.path / TOKENIZER_FILE).read_bytes()).hexdigest()
    return {"dataset": str(source.path.resolve()), "source": source.meta.get("source"), "sha256": digest}


def _write_tokens(tokenizer: TextTokenizer, documents: Sequence[str], path: Path, dtype: np.dtype) -> int:
    """Stream packed tokens to ``path`` chunk by chunk, so memory stays bounded by one chunk."""
    n_tokens = 0
    with open(path, "wb") as handle:
        for start in range(0, len(documents), _ENCODE_CHUNK_DOCS):
            packed = tokenizer.pack(documents[start : start + _ENCODE_CHUNK_DOCS])
            handle.write(packed.astype(dtype, copy=False).tobytes())
            n_tokens += len(packed)
    return n_tokens
