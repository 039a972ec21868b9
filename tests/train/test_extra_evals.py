"""Extra held-out evaluation sets: the standard-library source, sampling, caching and the logged losses."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from repeatlab.data.tokens import byte_tokenizer
from repeatlab.train import train
from repeatlab.train import extra_evals
from repeatlab.train.config import TrainConfig
from repeatlab.data.corpus import PYTHON_STDLIB, stdlib_files
from repeatlab.train.extra_evals import eval_tokens

from .conftest import CONTEXT, run_config


def test_stdlib_files_are_the_standard_library_without_tests_or_packages() -> None:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = stdlib_files()
    names = {p.relative_to(root).as_posix() for p in files}
    assert {"os.py", "json/decoder.py"} <= names
    assert not any(part in {"site-packages", "test", "tests"} for p in files for part in p.relative_to(root).parts)
    assert files == sorted(files, key=lambda p: p.relative_to(root).as_posix())


def test_stdlib_tokens_are_python_source_and_deterministic() -> None:
    tokenizer = byte_tokenizer()
    tokens = eval_tokens(PYTHON_STDLIB, tokenizer, n_tokens=3000, seed=0)
    assert tokens.dtype == np.int64 and len(tokens) == 3000
    assert np.array_equal(tokens, eval_tokens(PYTHON_STDLIB, tokenizer, n_tokens=3000, seed=0))
    assert not np.array_equal(tokens, eval_tokens(PYTHON_STDLIB, tokenizer, n_tokens=3000, seed=1))
    text = tokenizer.decode(tokens)
    assert "import " in text or "def " in text


def test_bad_names_and_sources_are_refused(data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="extra_evals: name 'test'"):
        TrainConfig(extra_evals={"test": PYTHON_STDLIB})
    with pytest.raises(ValueError, match="extra_evals: name 'Python'"):
        TrainConfig(extra_evals={"Python": PYTHON_STDLIB})
    with pytest.raises(ValueError, match="extra evaluation source .* does not exist"):
        train(run_config(data_dir, extra_evals={"other": str(tmp_path / "missing.txt")}), tmp_path / "run")
    assert not (tmp_path / "run").exists()
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("x = 1\n")
    with pytest.raises(ValueError, match="holds only"):
        train(run_config(data_dir, extra_evals={"tiny": str(tiny)}), tmp_path / "run")


def test_extra_losses_are_logged_cached_and_reused(data_dir: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    evals = {"python": PYTHON_STDLIB, "same": str(data_dir / "prepared")}
    config = run_config(data_dir, extra_evals=evals)
    summary = train(config, tmp_path / "run")
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all({"python_loss", "same_loss"} <= set(r) for r in records)
    assert summary["python_loss"] == records[-1]["python_loss"]
    # Prose-trained bytes: Python code is out of distribution, the corpus's own test split is not.
    assert records[-1]["python_loss"] > records[-1]["same_loss"]
    assert records[-1]["same_loss"] < records[0]["same_loss"] - 0.5
    cached = np.load(tmp_path / "run" / "extra_evals" / "python.npy")
    assert len(cached) == config.train.eval_test_sequences * CONTEXT + 1
    manifest = json.loads((tmp_path / "run" / "extra_evals" / "python.json").read_text())
    assert manifest["source"] == PYTHON_STDLIB and manifest["python"]

    # A second run in the same directory never reads the source again: the cache is the evaluation set.
    def unavailable(source: str, *, seed: int) -> None:
        raise AssertionError(f"{source} was read again")

    monkeypatch.setattr(extra_evals, "source_documents", unavailable)
    (tmp_path / "run" / "summary.json").unlink()
    (tmp_path / "run" / "model.safetensors").unlink()
    again = train(config, tmp_path / "run")  # resumes from the final checkpoint, reading the cache
    assert again["python_loss"] == summary["python_loss"]
