from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from repeatlab.cli.__main__ import app
from repeatlab.data.loader import MixtureLoader
from repeatlab.data.mixture import load_mixture
from repeatlab.data.prepared import load_prepared

runner = CliRunner()


def _corpus(tmp_path: Path) -> Path:
    path = tmp_path / "c.jsonl"
    lines = [json.dumps({"text": f"Document number {i} talks about topic {i % 7} at some length."}) for i in range(400)]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def test_prepare_mix_show(tmp_path: Path) -> None:
    data, mix = tmp_path / "data", tmp_path / "mix"
    result = runner.invoke(app, ["data", "prepare", str(_corpus(tmp_path)), "--out", str(data),
                                 "--tokenizer", "byte", "--context", "16"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["data", "mix", str(data), "--total-tokens", "8K", "--repeated-fraction", "0.2",
                                 "--repeated-epochs", "4", "--out", str(mix)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((mix / "manifest.json").read_text())
    assert manifest["kind"] == "repeated" and manifest["total_tokens"] == 8000
    result = runner.invoke(app, ["data", "show", str(mix)])
    assert result.exit_code == 0 and "repeated" in result.output


def test_bad_input_is_one_line_error_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["data", "prepare", str(tmp_path / "missing.txt"), "--out", str(out)])
    assert result.exit_code == 2 and "does not exist" in result.output and "Traceback" not in result.output
    assert not out.exists()
    data = tmp_path / "data"
    runner.invoke(app, ["data", "prepare", str(_corpus(tmp_path)), "--out", str(data), "--tokenizer", "byte",
                        "--context", "16"])
    result = runner.invoke(app, ["data", "mix", str(data), "--total-tokens", "1G", "--out", str(tmp_path / "m")])
    assert result.exit_code == 2 and "holds only" in result.output
    assert not (tmp_path / "m").exists()
    result = runner.invoke(app, ["data", "mix", str(data), "--total-tokens", "ten", "--out", str(tmp_path / "m")])
    assert result.exit_code == 2 and "cannot read 'ten'" in result.output


def test_prepare_with_another_datasets_tokenizer(tmp_path: Path) -> None:
    source, reused = tmp_path / "source", tmp_path / "reused"
    result = runner.invoke(app, ["data", "prepare", str(_corpus(tmp_path)), "--out", str(source),
                                 "--vocab-size", "300", "--context", "16"])
    assert result.exit_code == 0, result.output
    other = tmp_path / "other.txt"
    other.write_text("\n\n".join(f"Another corpus, paragraph {i}, on subject {i % 5}." for i in range(200)))
    result = runner.invoke(app, ["data", "prepare", str(other), "--out", str(reused), "--context", "16",
                                 "--tokenizer-from", str(source)])
    assert result.exit_code == 0, result.output
    assert (reused / "tokenizer.json").read_bytes() == (source / "tokenizer.json").read_bytes()
    meta = json.loads((reused / "meta.json").read_text())
    assert meta["tokenizer"] == "bpe" and meta["vocab_size"] == 300
    assert meta["tokenizer_from"]["dataset"] == str(source.resolve())
    result = runner.invoke(app, ["data", "prepare", str(other), "--out", str(tmp_path / "x"), "--tokenizer-from",
                                 str(tmp_path / "missing")])
    assert result.exit_code == 2 and "is not a prepared dataset" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "x").exists()
    result = runner.invoke(app, ["data", "prepare", str(other), "--out", str(tmp_path / "x"), "--tokenizer-from",
                                 str(source), "--tokenizer", "byte"])
    assert result.exit_code == 2 and "conflicts with tokenizer='byte'" in result.output


def test_show_batch_prints_the_rows_the_loader_yields(tmp_path: Path) -> None:
    data, mix = tmp_path / "data", tmp_path / "mix"
    runner.invoke(app, ["data", "prepare", str(_corpus(tmp_path)), "--out", str(data), "--tokenizer", "byte",
                        "--context", "16"])
    runner.invoke(app, ["data", "mix", str(data), "--total-tokens", "8K", "--repeated-fraction", "0.5",
                        "--repeated-epochs", "4", "--out", str(mix)])
    result = runner.invoke(app, ["data", "show-batch", str(mix), "--step", "3", "--rows", "5", "--batch-tokens", "256"])
    assert result.exit_code == 0, result.output
    dataset = load_prepared(data)
    mixture = load_mixture(mix, dataset)
    trained = next(b for i, b in enumerate(MixtureLoader(dataset, mixture, batch_size=16)) if i == 3)
    assert "step 3 (of 0 to 30): 16 sequences of 16 tokens" in result.output
    rows = dataset.sequences("train")
    for i, (sequence_id, repeated) in enumerate(zip(trained.sequence_ids[:5], trained.is_repeat[:5], strict=True)):
        assert f"row {i}  sequence {sequence_id}  {'repeated' if repeated else 'unique'}" in result.output
        assert dataset.tokenizer.decode(rows[sequence_id].tolist()) in result.output
    assert "row 5 " not in result.output
    result = runner.invoke(app, ["data", "show-batch", str(mix), "--step", "31", "--batch-tokens", "256"])
    assert result.exit_code == 2 and "from 0 to 30" in result.output and "Traceback" not in result.output
