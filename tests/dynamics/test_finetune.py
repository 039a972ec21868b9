"""Fine-tuning stage: configs, the from-scratch comparison and its effective-parameter multiplier."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from repeatlab.records import read_config
from repeatlab.data.mixture import MixtureSpec, make_mixture
from repeatlab.data.prepare import PrepareConfig, prepare_dataset
from repeatlab.dynamics import FINETUNE_FILE, FinetuneStage, compare_finetune, finetune_config, run_finetune_stage
from repeatlab.io import write_json
from repeatlab.laws import PowerLaw, control_curve
from repeatlab.models.weights import CheckpointMismatchError
from repeatlab.train import RunConfig, train

from .conftest import CONTEXT, WORDS, tiny_config

LAW = PowerLaw(E=1.0, n_c=1e4, alpha=0.5)  # L(N) = 1 + (1e4 / N)^0.5; N_eff(L) = 1e4 / (L - 1)^2
SCRATCH_SIZES = [5e3, 1e4, 3e4, 1e5, 3e5]
CURVE = control_curve(SCRATCH_SIZES, LAW.loss(SCRATCH_SIZES))  # the law's controls, power-law fitted


def test_finetune_config_keeps_the_run_and_halves_the_schedule(text_data: Path) -> None:
    pretrained = tiny_config(text_data, mixture="repeated")
    config = finetune_config(pretrained, text_data / "pre", dataset=pretrained.dataset, mixture="m")
    assert config.optim.lr == pretrained.optim.lr / 2
    assert config.optim.warmup_steps == pretrained.optim.warmup_steps // 2
    assert config.model == pretrained.model and config.train == pretrained.train and config.mixture == "m"
    assert config.init_from == str((text_data / "pre").resolve()) and config.init_checkpoint == "final"
    with pytest.raises(ValueError, match="lr_scale"):
        FinetuneStage(total_tokens=100, lr_scale=0.0)


def fake_run(path: Path, *, loss: float, n_params: int = 40_000, init_from: Path | None = None,
             kind: str = "repeated") -> Path:
    path.mkdir(parents=True)
    summary = {"test_loss": loss, "n_params_non_embedding": n_params, "model": "m",
               "mixture": {"kind": kind, "repeated_fraction": 0.5, "repeated_epochs": 4.0}}
    if init_from is not None:
        summary["init_from"] = {"run_dir": str(init_from), "checkpoint": "final"}
    write_json(path / "summary.json", summary)
    return path


def test_compare_inverts_the_from_scratch_law(tmp_path: Path) -> None:
    pre = fake_run(tmp_path / "pre", loss=2.0)
    finetuned = fake_run(tmp_path / "ft", loss=1.0 + (1e4 / 25_000) ** 0.5, init_from=pre)  # N_eff = 25k
    scratch = fake_run(tmp_path / "scratch", loss=1.0 + (1e4 / 40_000) ** 0.5)  # N_eff = 40k
    row = compare_finetune(finetuned, scratch, CURVE)
    assert CURVE.method == "power-law fit"
    assert row.n_eff_finetuned == pytest.approx(25_000, rel=1e-3) and row.n_eff_scratch == pytest.approx(40_000, rel=1e-3)
    assert row.multiplier == pytest.approx(25_000 / 40_000, rel=1e-3)  # ossified: worth 0.625x the parameters
    assert row.pretrained == "pre" and row.pretrain_kind == "repeated"
    alone = compare_finetune(finetuned, None, CURVE)
    assert alone.multiplier == pytest.approx(25_000 / 40_000, rel=1e-3) and alone.scratch_loss is None  # against N itself
    assert compare_finetune(finetuned, scratch, None).multiplier is None


def test_stage_fine_tunes_trains_from_scratch_and_writes_the_comparison(text_data: Path, tmp_path: Path) -> None:
    runs = []
    for name, mixture in (("control", "control"), ("repeated", "repeated")):
        train(tiny_config(text_data, mixture=mixture, n_log_evals=0, eval_every=None), tmp_path / name)
        runs.append(tmp_path / name)
    stage = FinetuneStage(total_tokens=24 * 32, mixture_seed=5)
    rows = run_finetune_stage(runs, stage, tmp_path / "stage", curve=CURVE)
    out = tmp_path / "stage"
    names = sorted(p.name for p in (out / "runs").iterdir())
    assert names == ["ft-control", "ft-repeated", "scratch-attn-only-tiny-2l-seed0"]
    stored = json.loads((out / FINETUNE_FILE).read_text())
    assert [r["run"] for r in stored["rows"]] == ["ft-control", "ft-repeated"] and stored["note"] is None
    assert {r.pretrain_kind for r in rows} == {"control", "repeated"}
    for row in rows:
        assert row.multiplier == pytest.approx(row.n_eff_finetuned / row.n_eff_scratch)
        assert row.scratch_loss == rows[0].scratch_loss  # one from-scratch run per size and seed
    ft_config = json.loads((out / "runs" / "ft-control" / "config.json").read_text())
    assert ft_config["init_from"] == str(runs[0].resolve()) and ft_config["optim"]["lr"] == 1.5e-3
    # Idempotent: a second call trains nothing and gives the same rows; with one size there is no curve to invert.
    assert run_finetune_stage(runs, stage, out, curve=CURVE) == rows
    again = run_finetune_stage(runs, stage, out)
    assert all(r.multiplier is None for r in again)
    assert "no from-scratch curve: needs control runs of at least 2 model sizes" in json.loads((out / FINETUNE_FILE).read_text())["note"]


OTHER_WORDS = ["lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed", "do",
               "eiusmod", "tempor"]


def _write_corpus(folder: Path, words: list[str], prefix: str) -> Path:
    folder.mkdir()
    for i in range(60):
        text = " ".join(words[(i * 7 + j * 3) % len(words)] for j in range(40))
        (folder / f"doc{i:03d}.txt").write_text(f"{prefix} {i}. {text}.", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def pretrained_on_a(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``data/a`` (a 300-token BPE over one corpus), ``data/b`` (another corpus with a's tokenizer),
    ``data/b-own`` (that corpus with its own 300-token BPE), ``data/b-short`` (a's tokenizer at half the
    context), and ``pre/``: a run pre-trained on a control mixture over ``a``."""
    root = tmp_path_factory.mktemp("two-corpora")
    data = root / "data"
    corpus_a = _write_corpus(root / "corpus-a", WORDS, "Doc")
    corpus_b = _write_corpus(root / "corpus-b", OTHER_WORDS, "Item")
    for name, source, context, tokenizer_from in (("a", corpus_a, CONTEXT, None),
                                                  ("b", corpus_b, CONTEXT, data / "a"),
                                                  ("b-own", corpus_b, CONTEXT, None),
                                                  ("b-short", corpus_b, CONTEXT // 2, data / "a")):
        config = PrepareConfig(source=str(source), vocab_size=300, context=context, test_fraction=0.1,
                               tokenizer_from=str(tokenizer_from) if tokenizer_from else None)
        prepare_dataset(config, data / name)
    make_mixture(data / "a", MixtureSpec(total_tokens=48 * CONTEXT, seed=1), data / "mix-a")
    config = replace(tiny_config(data, n_log_evals=0, eval_every=None), dataset=str(data / "a"),
                     mixture=str(data / "mix-a"))
    train(config, root / "pre")
    return root


def test_a_run_pretrained_on_one_corpus_fine_tunes_on_another_with_its_tokenizer(pretrained_on_a: Path,
                                                                                  tmp_path: Path) -> None:
    pre, other = pretrained_on_a / "pre", pretrained_on_a / "data" / "b"
    stage = FinetuneStage(total_tokens=24 * CONTEXT, dataset=str(other), scratch=False)
    (row,) = run_finetune_stage([pre], stage, tmp_path / "stage")
    run = tmp_path / "stage" / "runs" / "ft-pre"
    config = json.loads((run / "config.json").read_text())
    assert config["dataset"] == str(other.resolve()) and config["init_from"] == str(pre.resolve())
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    # Step 0 scores the pre-trained weights on the new corpus; fine-tuning on it lowers that loss.
    assert records[0]["step"] == 0 and row.finetuned_loss < records[0]["test_loss"]
    assert row.pretrained == "pre" and row.pretrain_kind == "control"


@pytest.mark.parametrize(("dataset", "error", "message"), [
    ("b-own", ValueError, r"uses another tokenizer than .*--tokenizer-from"),
    ("b-short", CheckpointMismatchError, r"has context 16 but the init_from run .* at context 32 .*--context 32"),
])
def test_fine_tuning_on_another_tokenizer_or_context_is_refused_before_writing(
    pretrained_on_a: Path, tmp_path: Path, dataset: str, error: type[Exception], message: str
) -> None:
    pre, data = pretrained_on_a / "pre", pretrained_on_a / "data" / dataset
    make_mixture(data, MixtureSpec(total_tokens=2048, seed=0), tmp_path / "mix")
    config = finetune_config(read_config(RunConfig, pre / "config.json"), pre, dataset=str(data),
                             mixture=str(tmp_path / "mix"))
    with pytest.raises(error, match=message):
        train(config, tmp_path / "ft")
    assert not (tmp_path / "ft").exists()
