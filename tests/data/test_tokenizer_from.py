"""Preparing a corpus with another prepared dataset's tokenizer (``PrepareConfig.tokenizer_from``)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from repeatlab.data.prepare import PrepareConfig, prepare_dataset, tokenizer_source
from repeatlab.data.prepared import PreparedDataset
from repeatlab.data.summary import summarize_prepared

OTHER_WORDS = ["lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed", "do",
               "eiusmod", "tempor"]


@pytest.fixture()
def bpe_source(tmp_path: Path, text_dir: Path) -> PreparedDataset:
    """A 320-token BPE dataset trained on the shared test corpus."""
    config = PrepareConfig(source=str(text_dir), tokenizer="bpe", vocab_size=320, context=8, test_fraction=0.2)
    return prepare_dataset(config, tmp_path / "source")


@pytest.fixture()
def other_corpus(tmp_path: Path) -> Path:
    """Documents in another vocabulary than the source's corpus."""
    folder = tmp_path / "other"
    folder.mkdir()
    for i in range(40):
        words = " ".join(OTHER_WORDS[(i * 5 + j) % len(OTHER_WORDS)] for j in range(30))
        (folder / f"doc{i:03d}.txt").write_text(f"Item {i}: {words}.", encoding="utf-8")
    return folder


def test_reused_tokenizer_gives_the_same_ids_and_records_its_origin(
    tmp_path: Path, bpe_source: PreparedDataset, other_corpus: Path
) -> None:
    messages: list[str] = []
    config = PrepareConfig(source=str(other_corpus), context=8, test_fraction=0.2,
                           tokenizer_from=str(bpe_source.path))
    reused = prepare_dataset(config, tmp_path / "reused", progress=messages.append)
    text = "Item 3: lorem ipsum. Document 7. the quick brown fox <|endoftext|> jumps"
    assert reused.tokenizer.encode(text) == bpe_source.tokenizer.encode(text)
    assert (reused.path / "tokenizer.json").read_bytes() == (bpe_source.path / "tokenizer.json").read_bytes()
    # The packed streams are the source tokenizer's encoding of this corpus's documents.
    stream = np.asarray(reused.tokens("test"))
    documents = bpe_source.tokenizer.decode(stream).split("<|endoftext|>")[:-1]
    np.testing.assert_array_equal(stream, bpe_source.tokenizer.pack(documents))
    meta = json.loads((reused.path / "meta.json").read_text())
    assert meta["tokenizer"] == "bpe" and meta["vocab_size"] == 320 == reused.vocab_size
    assert meta["eot_id"] == bpe_source.tokenizer.eot_id
    digest = hashlib.sha256((bpe_source.path / "tokenizer.json").read_bytes()).hexdigest()
    assert meta["tokenizer_from"] == {"dataset": str(bpe_source.path.resolve()),
                                      "source": bpe_source.meta["source"], "sha256": digest}
    assert meta["config"]["tokenizer_from"] == str(bpe_source.path)
    assert any("reusing the bpe tokenizer" in m for m in messages)
    assert not any("training" in m for m in messages)
    assert f"from {bpe_source.path.resolve()}" in dict(summarize_prepared(reused))["tokenizer"]
    assert json.loads((bpe_source.path / "meta.json").read_text())["tokenizer_from"] is None


def test_another_context_is_allowed_with_a_note(tmp_path: Path, bpe_source: PreparedDataset,
                                                other_corpus: Path) -> None:
    messages: list[str] = []
    config = PrepareConfig(source=str(other_corpus), context=16, test_fraction=0.2,
                           tokenizer_from=str(bpe_source.path))
    assert prepare_dataset(config, tmp_path / "reused", progress=messages.append).context == 16
    assert any("cannot be fine-tuned" in m and "--context 8" in m for m in messages)


def test_settings_are_taken_from_the_source_or_must_match_it(bpe_source: PreparedDataset) -> None:
    source = str(bpe_source.path)
    assert tokenizer_source(PrepareConfig(tokenizer_from=source)) is not None  # defaults: take the source's
    assert tokenizer_source(PrepareConfig(tokenizer="bpe", vocab_size=320, tokenizer_from=source)) is not None
    with pytest.raises(ValueError, match=r"bpe tokenizer of 320 tokens, which conflicts with vocab_size=512"):
        tokenizer_source(PrepareConfig(vocab_size=512, tokenizer_from=source))
    with pytest.raises(ValueError, match=r"conflicts with tokenizer='byte'; leave tokenizer and vocab_size unset"):
        tokenizer_source(PrepareConfig(tokenizer="byte", tokenizer_from=source))
    assert tokenizer_source(PrepareConfig(tokenizer_from=None)) is None


def test_a_byte_source_is_reused_as_byte(tmp_path: Path, prepared: PreparedDataset, other_corpus: Path) -> None:
    config = PrepareConfig(source=str(other_corpus), context=8, test_fraction=0.2, tokenizer_from=str(prepared.path))
    reused = prepare_dataset(config, tmp_path / "reused")
    assert reused.meta["tokenizer"] == "byte" and reused.vocab_size == 257 and reused.dtype == np.uint16
    with pytest.raises(ValueError, match="conflicts with vocab_size=4096"):
        tokenizer_source(PrepareConfig(vocab_size=4096, tokenizer_from=str(prepared.path)))


def test_a_missing_or_broken_source_is_a_clear_error_and_writes_nothing(
    tmp_path: Path, bpe_source: PreparedDataset, other_corpus: Path
) -> None:
    out = tmp_path / "out"
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=rf"tokenizer_from {missing} is not a prepared dataset .*"
                                                r"'repeatlab data prepare'"):
        prepare_dataset(PrepareConfig(source=str(other_corpus), tokenizer_from=str(missing)), out)
    (bpe_source.path / "tokenizer.json").unlink()
    with pytest.raises(ValueError, match=r"tokenizer_from: .*tokenizer\.json is missing; the prepared dataset is corrupt"):
        prepare_dataset(PrepareConfig(source=str(other_corpus), tokenizer_from=str(bpe_source.path)), out)
    assert not out.exists()
    with pytest.raises(ValueError, match="tokenizer_from must be a prepared dataset directory"):
        PrepareConfig(tokenizer_from="")
