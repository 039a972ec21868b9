"""``repeatlab probe RUNDIR``: writes probes.json from a run directory; bad input is a one-line error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from repeatlab.cli.__main__ import app
from repeatlab.config import to_dict
from repeatlab.data.mixture import Mixture, write_mixture
from repeatlab.data.prepared import PreparedDataset
from repeatlab.io import write_json
from repeatlab.layout import PROBES_FILE
from repeatlab.models.gpt import GPT
from repeatlab.models.sizes import model_config
from repeatlab.models.weights import save_model
from repeatlab.records import SCHEMAS
from repeatlab.train.config import RunConfig

runner = CliRunner()
FAST = ["--set", "n_random_sequences=4", "--set", "n_test_sequences=4", "--set", "n_copy_paragraphs=1",
        "--set", "n_memorisation_sequences=4", "--set", "memorisation_continuation_tokens=8"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, prepared: PreparedDataset, mixture: Mixture) -> Path:
    """A finished-looking run directory: resolved config and final weights of an untrained model."""
    root = tmp_path_factory.mktemp("probe-run")
    write_mixture(mixture, root / "mixture")
    run = root / "run"
    run.mkdir()
    config = RunConfig(dataset=str(prepared.path), mixture=str(root / "mixture"), model="attn-only-tiny-2l").resolved()
    write_json(run / "config.json", to_dict(config))
    torch.manual_seed(0)
    model = GPT(model_config("attn-only-tiny-2l", vocab_size=prepared.vocab_size, context=prepared.context))
    save_model(model, run / "model.safetensors")
    return run


def test_probe_writes_json(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    result = runner.invoke(app, ["probe", str(run_dir), "--out", str(out), "--device", "cpu", "--seed", "3",
                                 "--ablate", "1.0,0.2", "--ablation-mode", "zero", *FAST])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["schema"] == SCHEMAS[PROBES_FILE] and data["checkpoint"] == "final"
    assert data["config"]["seed"] == 3 and data["config"]["n_test_sequences"] == 4
    assert data["ablation"]["heads"] == [[1, 0], [0, 2]] and data["ablation"]["mode"] == "zero"
    assert len(data["heads"]["induction"]["per_head"]) == 2 and len(data["heads"]["induction"]["per_head"][0]) == 4
    assert data["copying"]["paragraphs"][0]["sequence_id"] >= 0
    assert "ICL score" in result.output


def test_probe_subset_defaults_to_run_dir(run_dir: Path) -> None:
    result = runner.invoke(app, ["probe", str(run_dir), "--probes", "induction,ov_copying", "--device", "cpu", *FAST])
    assert result.exit_code == 0, result.output
    data = json.loads((run_dir / "probes.json").read_text())
    assert set(data["heads"]) == {"induction", "previous_token", "duplicate_token", "ov_copying"}
    assert data["icl"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--probes", "inductoin"], "'inductoin' is not one of"),
        (["--ablate", "9.9", "--probes", "ablation"], "head 9.9 does not exist"),
        (["--ablate", "1"], "LAYER.HEAD"),
        (["--set", "induction_tokens=100", "--probes", "induction"], "induction probe needs sequences of 201 tokens"),
        (["--set", "nonsense=1"], "unknown key 'nonsense'"),
        (["--checkpoint", "step_0000007"], "no checkpoint 'step_0000007'"),
    ],
)
def test_bad_input_is_one_line_error(run_dir: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["probe", str(run_dir), "--device", "cpu", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_missing_and_corrupt_checkpoints(run_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["probe", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "not a run directory" in result.output
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((run_dir / "config.json").read_text())
    (broken / "model.safetensors").write_bytes((run_dir / "model.safetensors").read_bytes()[:-100])
    result = runner.invoke(app, ["probe", str(broken), "--device", "cpu"])
    assert result.exit_code == 2 and "corrupt" in result.output and "Traceback" not in result.output
    assert not (broken / "probes.json").exists()
