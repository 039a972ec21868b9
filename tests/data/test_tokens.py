from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from repeatlab.data.tokens import EOT, byte_tokenizer, load_tokenizer, token_dtype, train_bpe

from .conftest import make_documents


def test_byte_tokenizer_is_bytes_plus_eot() -> None:
    tok = byte_tokenizer()
    text = "héllo wörld"
    assert tok.encode(text) == list(text.encode("utf-8"))
    assert tok.decode(tok.encode(text)) == text
    assert tok.eot_id == 256 and tok.vocab_size == 257


def test_literal_eot_text_in_a_document_is_not_a_separator() -> None:
    tok = byte_tokenizer()
    ids = tok.encode(f"a {EOT} b")
    assert tok.eot_id not in ids
    assert tok.decode(ids) == f"a {EOT} b"


def test_pack_joins_documents_with_eot() -> None:
    tok = byte_tokenizer()
    packed = tok.pack(["ab", "", "c"])
    assert packed.tolist() == [97, 98, 256, 256, 99, 256]


def test_bpe_roundtrip_save_load_and_transformers(tmp_path: Path) -> None:
    docs = make_documents(200)
    tok = train_bpe(docs, vocab_size=400)
    assert tok.vocab_size == 400
    text = docs[3] + " unseen wordz ¿ü"
    assert tok.decode(tok.encode(text)) == text
    assert len(tok.encode(docs[3])) < len(docs[3].encode()) / 2  # merges learned
    tok.save(tmp_path / "tokenizer.json")
    again = load_tokenizer(tmp_path)
    assert again.encode(text) == tok.encode(text) and again.eot_id == tok.eot_id
    transformers = pytest.importorskip("transformers")
    fast = transformers.PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "tokenizer.json"))
    assert fast(text)["input_ids"] == tok.encode(text)


def test_bpe_training_is_deterministic() -> None:
    docs = make_documents(100)
    assert train_bpe(docs, 350).tokenizer.to_str() == train_bpe(docs, 350).tokenizer.to_str()


def test_errors() -> None:
    with pytest.raises(ValueError, match="too small for BPE"):
        train_bpe(["x"], vocab_size=50)
    with pytest.raises(FileNotFoundError):
        load_tokenizer("/nonexistent/tokenizer.json")


def test_token_dtype() -> None:
    assert token_dtype(65_536) == np.uint16
    assert token_dtype(65_537) == np.uint32
