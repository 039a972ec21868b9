from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from repeatlab.data.prepare import PrepareConfig, prepare_dataset, split_documents
from repeatlab.data.prepared import PreparedDataset, load_prepared, sequence_view

from .conftest import make_documents


def test_prepared_layout_and_meta(prepared: PreparedDataset) -> None:
    meta = json.loads((prepared.path / "meta.json").read_text())
    for key in ("source", "vocab_size", "dtype", "context", "seed", "train", "test"):
        assert key in meta
    assert meta["dtype"] == "uint16" and meta["context"] == 16
    for split in ("train", "test"):
        tokens = prepared.tokens(split)
        assert len(tokens) == meta[split]["n_tokens"]
        assert meta[split]["n_sequences"] == (len(tokens) - 1) // 16
        rows = prepared.sequences(split)
        assert rows.shape == (meta[split]["n_sequences"], 17)
        # sequence i starts at token i*context and overlaps its successor by one token
        np.testing.assert_array_equal(rows[1], tokens[16:33])
        assert rows[0, -1] == rows[1, 0]
    assert meta["train"]["n_documents"] + meta["test"]["n_documents"] == 150


def test_documents_are_joined_by_eot_and_decode_back(prepared: PreparedDataset, text_dir: Path) -> None:
    tok = prepared.tokenizer
    stream = np.asarray(prepared.tokens("test"))
    pieces = tok.decode(stream).split("<|endoftext|>")
    originals = {p.read_text() for p in text_dir.iterdir()}
    assert pieces[-1] == "" and all(piece in originals for piece in pieces[:-1])
    assert (stream == tok.eot_id).sum() == prepared.meta["test"]["n_documents"]


def test_test_split_is_disjoint_and_duplicates_removed(tmp_path: Path) -> None:
    docs = make_documents(50)
    docs += docs[:10]  # ten documents appear twice
    split = split_documents(docs, test_fraction=0.2, seed=3)
    test_texts = {docs[i] for i in split.test}
    assert not any(docs[i] in test_texts for i in split.train)
    duplicated_in_test = sum(1 for t in test_texts if docs.count(t) == 2)
    assert split.n_train_removed_as_test_duplicates >= duplicated_in_test > 0
    assert len(split.train) + len(split.test) + split.n_train_removed_as_test_duplicates == 60


def test_same_seed_same_dataset(tmp_path: Path, text_dir: Path) -> None:
    config = PrepareConfig(source=str(text_dir), tokenizer="bpe", vocab_size=320, context=8, test_fraction=0.2)
    a = prepare_dataset(config, tmp_path / "a")
    b = prepare_dataset(config, tmp_path / "b")
    for split in ("train", "test"):
        np.testing.assert_array_equal(a.tokens(split), b.tokens(split))
    assert a.vocab_size == 320


def test_too_small_corpus_writes_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "small"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.txt").write_text(f"doc {i}", encoding="utf-8")
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="corpus too small"):
        prepare_dataset(PrepareConfig(source=str(folder), tokenizer="byte", context=64, test_fraction=0.34), out)
    assert not out.exists() and not any(p.name.startswith(".out") for p in tmp_path.iterdir())


def test_refuses_to_overwrite_and_validates_config(tmp_path: Path, prepared: PreparedDataset) -> None:
    with pytest.raises(FileExistsError):
        prepare_dataset(PrepareConfig(source="builtin", tokenizer="byte"), prepared.path)
    with pytest.raises(ValueError, match="test_fraction"):
        PrepareConfig(test_fraction=1.5)
    with pytest.raises(ValueError, match="context"):
        PrepareConfig(context=1)


def test_corrupt_prepared_dataset_is_reported(prepared: PreparedDataset) -> None:
    (prepared.path / "train.bin").write_bytes(b"\x00" * 10)
    with pytest.raises(ValueError, match="corrupt"):
        load_prepared(prepared.path).tokens("train")
    with pytest.raises(FileNotFoundError, match="not a prepared dataset"):
        load_prepared(prepared.path.parent)


def test_sequence_view_does_not_copy() -> None:
    tokens = np.arange(21, dtype=np.uint16)
    view = sequence_view(tokens, 5)
    assert view.shape == (4, 6) and np.shares_memory(view, tokens)
