"""Extra held-out evaluation sets: out-of-distribution losses logged next to the test loss.

Hernandez et al. (2022) found repeated data hurts a text model's loss on Python code more than its text
loss. ``TrainConfig.extra_evals`` maps a name to a source, and each source becomes a fixed token sample
scored at every evaluation as ``{name}_loss``:

- ``python-stdlib``: the Python standard library's own ``.py`` files on this machine (tests, site-packages
  and files that are not UTF-8 left out), in a seeded random order: real source code with no download.
- a prepared dataset directory: its test split, decoded with its tokenizer.
- any corpus source of ``repeatlab.data.corpus`` (a ``.txt``/``.jsonl`` file, a directory of text files, ...).

Documents are tokenized with the run's own tokenizer, packed as in ``data.prepare`` and cut into the same
``context + 1`` windows, reading only as many documents as the sample needs. The standard library differs
between Python versions, so the sample is cached in the run directory (``extra_evals/{name}.npy`` with a
``.json`` manifest) when a run starts, and a resumed run reads it back rather than rebuilding it.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from repeatlab.data.corpus import PYTHON_STDLIB, CorpusError, iter_documents, stdlib_documents
from repeatlab.data.prepared import META_FILE, PreparedDataset, load_prepared, sequence_view
from repeatlab.data.tokens import TextTokenizer
from repeatlab.errors import RepeatlabError
from repeatlab.io import atomic_save_npy, read_json, write_json

EXTRA_EVALS_DIR = "extra_evals"


def _prepared_documents(dataset: PreparedDataset) -> Iterator[str]:
    tokens, eot = dataset.tokens("test"), int(dataset.meta.get("eot_id", dataset.tokenizer.eot_id))
    ends = np.flatnonzero(tokens == eot)
    start = 0
    for end in [*ends.tolist(), len(tokens)]:
        if end > start:
            yield dataset.tokenizer.decode(tokens[start:end])
        start = end + 1


def source_documents(source: str, *, seed: int) -> Iterator[str]:
    """The documents of an extra-evaluation source (see the module docstring)."""
    if source == PYTHON_STDLIB:
        return stdlib_documents(order_seed=seed)
    if (Path(source) / META_FILE).is_file():
        return _prepared_documents(load_prepared(source))
    return iter_documents(source)


def eval_tokens(source: str, tokenizer: TextTokenizer, *, n_tokens: int, seed: int) -> np.ndarray:
    """The first ``n_tokens`` tokens of the source's documents packed with end-of-text, as int64."""
    chunks: list[np.ndarray] = []
    total = 0
    try:
        for document in source_documents(source, seed=seed):
            packed = tokenizer.pack([document])
            chunks.append(packed)
            total += len(packed)
            if total >= n_tokens:
                break
    except CorpusError as exc:
        raise RepeatlabError(f"extra evaluation source {source!r}: {exc}; use {PYTHON_STDLIB}, a prepared dataset "
                         f"directory or a corpus source") from None
    if total < n_tokens:
        raise RepeatlabError(f"extra evaluation source {source!r} holds only {total:,} tokens, fewer than the "
                         f"{n_tokens:,} needed; lower train.eval_test_sequences or use a larger source")
    return np.concatenate(chunks)[:n_tokens].astype(np.int64)


def load_extra_evals(
    extra_evals: dict[str, str], dataset: PreparedDataset, run_dir: Path, *, n_sequences: int, seed: int
) -> dict[str, np.ndarray]:
    """``{name: n_sequences * context + 1 int64 tokens}``: each set read from the run's cache, else built.

    Nothing is written here (a run checks every input before writing); ``save_extra_evals`` caches them.
    """
    out: dict[str, np.ndarray] = {}
    n_tokens = n_sequences * dataset.context + 1
    for name, source in extra_evals.items():
        cached = Path(run_dir) / EXTRA_EVALS_DIR / f"{name}.npy"
        if cached.is_file():
            tokens = np.load(cached, allow_pickle=False)
        else:
            tokens = eval_tokens(source, dataset.tokenizer, n_tokens=n_tokens, seed=seed)
        if len(tokens) != n_tokens or (len(tokens) and int(tokens.max()) >= dataset.vocab_size):
            raise RepeatlabError(f"cached extra evaluation set {cached} does not fit this run "
                             f"({len(tokens)} tokens, expected {n_tokens}); delete it to rebuild it")
        out[name] = tokens
    return out


def eval_rows(tokens: np.ndarray, context: int) -> np.ndarray:
    """The ``[n, context + 1]`` windows of a set's tokens (consecutive windows share one token)."""
    return sequence_view(tokens, context)


def save_extra_evals(extra_evals: dict[str, str], tokens_by_name: dict[str, np.ndarray], run_dir: Path) -> None:
    """Cache each set as ``extra_evals/{name}.npy`` with a ``.json`` manifest, once."""
    directory = Path(run_dir) / EXTRA_EVALS_DIR
    for name, tokens in tokens_by_name.items():
        target = directory / f"{name}.npy"
        if target.is_file():
            continue
        directory.mkdir(parents=True, exist_ok=True)
        write_json(directory / f"{name}.json", {
            "source": extra_evals[name], "n_tokens": int(len(tokens)), "python": platform.python_version(),
        })
        atomic_save_npy(target, tokens)  # last: its presence marks the cache complete


def read_extra_eval_manifest(run_dir: Path, name: str) -> dict[str, object]:
    """The manifest of a cached set (source, sizes, the Python version whose standard library it holds)."""
    return read_json(Path(run_dir) / EXTRA_EVALS_DIR / f"{name}.json")


__all__ = ["EXTRA_EVALS_DIR", "eval_rows", "eval_tokens", "load_extra_evals", "read_extra_eval_manifest",
           "save_extra_evals", "source_documents"]
