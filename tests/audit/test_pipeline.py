"""End to end: audit_corpus on planted corpora, the JSON report, the CLI and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from repeatlab.audit import AuditConfig, TrainingPlan, audit_corpus, write_report
from repeatlab.cli.__main__ import app
from repeatlab.data.corpus import CorpusError
from repeatlab.data.tokens import train_bpe
from repeatlab.io import read_json

from .conftest import SPAN, Planted

runner = CliRunner()


def test_audit_recovers_planted_repetition(planted: Planted, planted_jsonl: Path, tmp_path: Path) -> None:
    config = AuditConfig(min_span_tokens=SPAN, top_k=3)
    report = audit_corpus(planted_jsonl, config, plan=TrainingPlan(n_params=125e6, n_train_tokens=1e6))
    assert report.n_documents == len(planted.documents)
    assert report.n_tokens == report.n_bytes == sum(len(d.encode()) for d in planted.documents)
    assert report.exact.n_groups == 1 and report.exact.groups[0].count == 4
    assert dict(report.spans.token_histogram) == planted.expected_token_histogram()
    assert report.spans.top_spans[0].text == planted.span_a
    assert report.near.n_pairs == 0  # the only duplicates are exact ones, which near-dup search skips
    assert report.cost is not None and report.cost.corpus_tokens == report.n_tokens
    reference = audit_corpus(planted_jsonl, AuditConfig(min_span_tokens=SPAN, top_k=3, span_method="suffix-array"))
    assert reference.spans.token_histogram == report.spans.token_histogram
    assert reference.spans.top_spans == report.spans.top_spans

    path = tmp_path / "out" / "audit.json"
    write_report(report, path)
    data = read_json(path)
    assert data["version"] == 1 and data["config"]["min_span_tokens"] == SPAN
    assert data["near"]["config"] == {"threshold": 0.8, "num_perm": 128, "shingle_size": 5, "seed": 1}
    assert data["spans"]["repeated_token_share"] == pytest.approx(report.spans.repeated_token_share)
    assert data["cost"]["summary"] == report.cost.summary
    assert not [p for p in path.parent.iterdir() if p.name != "audit.json"]  # no temporary left behind


def test_audit_with_a_trained_tokenizer(planted: Planted, planted_jsonl: Path, tmp_path: Path) -> None:
    tokenizer = train_bpe(planted.documents, 320)
    tokenizer.save(tmp_path / "tokenizer.json")
    config = AuditConfig(tokenizer=str(tmp_path / "tokenizer.json"), min_span_tokens=8)
    report = audit_corpus(planted_jsonl, config)
    assert report.n_tokens == sum(len(ids) for ids in tokenizer.encode_batch(planted.documents))
    reference = audit_corpus(planted_jsonl, AuditConfig(tokenizer=config.tokenizer, min_span_tokens=8,
                                                        span_method="suffix-array"))
    assert reference.spans.token_histogram == report.spans.token_histogram
    assert report.spans.top_spans[0].count == 7 and planted.span_a.startswith(report.spans.top_spans[0].text[:20])


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="empty"):
        audit_corpus(empty)
    with pytest.raises(CorpusError, match="does not exist"):
        audit_corpus(tmp_path / "missing.txt")
    with pytest.raises(FileNotFoundError, match="tokenizer"):
        audit_corpus(empty, AuditConfig(tokenizer=str(tmp_path / "nope.json")))
    with pytest.raises(ValueError, match="min_span_tokens"):
        AuditConfig(min_span_tokens=1)
    with pytest.raises(ValueError, match="threshold"):
        AuditConfig().near_dup.__class__(threshold=1.5)


def test_cli_audit(planted_jsonl: Path, tmp_path: Path) -> None:
    out = tmp_path / "audit.json"
    result = runner.invoke(app, ["audit", str(planted_jsonl), "--min-span", "20", "--out", str(out),
                                 "--n-params", "125M", "--train-tokens", "20M", "--top", "3"])
    assert result.exit_code == 0, result.output
    assert "most repeated spans" in result.output and "poor-performance band" in result.output
    data = json.loads(out.read_text())
    assert data["cost"]["plan"] == {"n_params": 125e6, "n_train_tokens": 20e6}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.jsonl"], "does not exist"),
        (["{corpus}", "--n-params", "125M"], "both --n-params and --train-tokens"),
        (["{corpus}", "--min-span", "1"], "min_span_tokens"),
        (["{corpus}", "--backend", "spark"], "backend"),
        (["{corpus}", "--n-params", "lots", "--train-tokens", "1B"], "cannot read"),
    ],
)
def test_cli_errors_are_one_line_and_write_nothing(
    planted_jsonl: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "audit.json"
    argv = [a.format(corpus=planted_jsonl) if "{" in a else str(tmp_path / a) if a.endswith(".jsonl") else a
            for a in args]
    result = runner.invoke(app, ["audit", *argv, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not out.exists()
