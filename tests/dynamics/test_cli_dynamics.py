"""``repeatlab train`` with probe curves, extra evaluations, interventions and fine-tuning: thin over the library."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from repeatlab.cli.__main__ import app
from repeatlab.cli.train import parse_intervention
from repeatlab.config import ConfigError
from repeatlab.train import InterventionConfig

runner = CliRunner()


def test_intervention_syntax() -> None:
    assert parse_intervention("blocks.0.attn.z:heads=0,1:mode=zero:steps=0-200") == InterventionConfig(
        hook="blocks.0.attn.z", heads=(0, 1), start_step=0, stop_step=200)
    assert parse_intervention("blocks.1.attn.pattern:mode=clamp:value=0.5:steps=10-:evals=no") == InterventionConfig(
        hook="blocks.1.attn.pattern", mode="clamp", value=0.5, start_step=10, in_evals=False)
    for bad, message in [("blocks.0.attn.z:heads", "KEY=VALUE"), ("blocks.0.attn.z:colour=red", "unknown key"),
                         ("blocks.0.attn.z:steps=a-b", "invalid literal"), ("blocks.0.attn.z:mode=half", "mode")]:
        with pytest.raises((ConfigError, ValueError), match=message):
            parse_intervention(bad)


def test_train_with_probes_extra_eval_intervention_then_finetune(text_data: Path, tmp_path: Path) -> None:
    common = ["--batch-tokens", "128", "--device", "cpu", "--set", "train.cpu_threads=1", "--set",
              "train.n_log_evals=2", "--set", "train.eval_test_sequences=4", "--set", "train.probe_sequences=4",
              "--set", "optim.warmup_steps=2"]
    pre = tmp_path / "pre"
    result = runner.invoke(app, [
        "train", str(pre), "--dataset", str(text_data / "prepared"), "--mixture", str(text_data / "repeated"),
        "--model", "attn-only-tiny-2l", "--probe-metrics", "induction,previous_token",
        "--extra-eval", "python=python-stdlib", "--intervention", "blocks.0.attn.z:heads=1:steps=0-6", *common])
    assert result.exit_code == 0, result.output
    assert "induction.max" in result.output and "python " in result.output
    config = json.loads((pre / "config.json").read_text())
    assert config["train"]["probe_metrics"] == ["induction", "previous_token"]
    assert config["train"]["extra_evals"] == {"python": "python-stdlib"}
    assert config["train"]["interventions"][0]["heads"] == [1] and config["train"]["interventions"][0]["stop_step"] == 6

    ft = tmp_path / "ft"
    tuned = runner.invoke(app, ["train", str(ft), "--init-from", str(pre), "--mixture", str(text_data / "control")])
    assert tuned.exit_code == 0, tuned.output
    ft_config = json.loads((ft / "config.json").read_text())
    assert ft_config["init_from"] == str(pre.resolve()) and ft_config["model"] == "attn-only-tiny-2l"
    assert ft_config["optim"]["lr"] == config["optim"]["lr"] / 2 and ft_config["optim"]["warmup_steps"] == 1
    assert ft_config["train"] == config["train"]  # inherited: probes, extra evaluations, interventions

    wrong = runner.invoke(app, ["train", str(tmp_path / "bad"), "--init-from", str(pre), "--mixture",
                                str(text_data / "control"), "--model", "tiny-2l"])
    assert wrong.exit_code == 2 and "cannot initialise from" in wrong.output and "Traceback" not in wrong.output
