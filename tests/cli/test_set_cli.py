"""``--set KEY=VALUE`` reads the same in ``train`` and ``sweep``: TOML values, through ``config.parse_overrides``."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from repeatlab.cli.__main__ import app
from repeatlab.sweeps.grid import expand_grid, load_grid

runner = CliRunner()

SETS = ["--set", "train.checkpoint_every=1_000", "--set", "optim.warmup_steps=3", "--set", "train.n_log_evals=2"]
"""``1_000`` is a TOML integer (the JSON ``train --set`` once read would have kept it as the string '1_000')."""
UPDATES = {"train.checkpoint_every": 1000, "optim.warmup_steps": 3, "train.n_log_evals": 2}


def test_train_reads_toml_values(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n\n".join(f"Document {i} is about topic {i % 7} at some length." for i in range(300)))
    data, mix, run = tmp_path / "data", tmp_path / "mix", tmp_path / "run"
    runner.invoke(app, ["data", "prepare", str(corpus), "--out", str(data), "--tokenizer", "byte", "--context", "16"])
    runner.invoke(app, ["data", "mix", str(data), "--total-tokens", str(48 * 16), "--out", str(mix)])
    result = runner.invoke(app, ["train", str(run), "--dataset", str(data), "--mixture", str(mix), "--model", "tiny-1l",
                                 "--batch-tokens", str(8 * 16), "--device", "cpu", "--set", "train.cpu_threads=1",
                                 "--set", "train.eval_test_sequences=8", "--set", "optim.grad_clip=null", *SETS])
    assert result.exit_code == 0, result.output
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["checkpoint_every"] == 1000 and config["train"]["n_log_evals"] == 2
    assert config["optim"]["warmup_steps"] == 3 and config["optim"]["grad_clip"] is None
    bad = runner.invoke(app, ["train", str(run), "--set", "train.checkpoint_every"])
    assert bad.exit_code == 2 and "--set expects KEY=VALUE" in bad.output and "Traceback" not in bad.output


def test_sweep_reads_the_same_values() -> None:
    result = runner.invoke(app, ["sweep", "plan", "cpu-tiny", *SETS])
    assert result.exit_code == 0, result.output
    grid = load_grid("cpu-tiny", overrides=UPDATES)
    assert grid.train.checkpoint_every == 1000 and grid.optim.warmup_steps == 3
    listed = {line.split()[0] for line in result.output.splitlines() if line.startswith("  ") and "seed=" in line}
    assert listed == {spec.run_id for spec in expand_grid(grid)}
    assert listed.isdisjoint(spec.run_id for spec in expand_grid(load_grid("cpu-tiny")))
    bad = runner.invoke(app, ["sweep", "plan", "cpu-tiny", "--set", "seeds"])
    assert bad.exit_code == 2 and "--set expects KEY=VALUE" in bad.output and "Traceback" not in bad.output
