"""Training-time interventions: the replacement itself, when it applies, its errors, and exact resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from repeatlab.models.gpt import GPT, ModelConfig
from repeatlab.models.hooks import run_with_cache
from repeatlab.models.weights import CheckpointMismatchError
from repeatlab.train import InterventionConfig, RunConfig, train
from repeatlab.train.interventions import check_interventions, intervened, replace_activation

from .conftest import StopTraining, run_config, stop_at_eval


def small_model() -> GPT:
    torch.manual_seed(0)
    return GPT(ModelConfig(n_layer=2, d_model=16, n_head=4, vocab_size=11, context=8, mlp=False))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"hook": "blocks.0.attn.z!"}, "hook"),
        ({"hook": "blocks.0.attn.z", "heads": (1, 1)}, "heads lists a head twice"),
        ({"hook": "blocks.0.attn.z", "heads": (-1,)}, "heads"),
        ({"hook": "blocks.0.attn.z", "mode": "half"}, "mode"),
        ({"hook": "blocks.0.attn.z", "value": 2.0}, "value is only used by mode clamp"),
        ({"hook": "blocks.0.attn.z", "start_step": 5, "stop_step": 5}, "stop_step=5 must exceed"),
        ({"hook": "blocks.0.attn.z", "mode": "reference"}, "reference .a run directory. is needed by mode reference"),
        ({"hook": "blocks.0.attn.z", "reference": "runs/a"}, "and only by it"),
    ],
)
def test_bad_intervention_names_the_field(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        InterventionConfig(**fields)


def test_step_range_is_half_open_and_evals_can_opt_out() -> None:
    item = InterventionConfig(hook="blocks.0.attn.z", start_step=2, stop_step=5)
    assert [s for s in range(8) if item.active(s)] == [2, 3, 4]
    bare = InterventionConfig(hook="blocks.0.attn.z", in_evals=False)
    assert bare.active(3) and not bare.active(3, evaluating=True)
    assert InterventionConfig(hook="blocks.0.attn.z", start_step=1).active(10**9)


def test_replacements_touch_only_the_chosen_heads() -> None:
    z = torch.randn(3, 5, 4, 2)  # [B, T, H, Dh]
    zero = replace_activation(z, InterventionConfig(hook="blocks.0.attn.z", heads=(1, 3)))
    assert torch.equal(zero[:, :, [0, 2]], z[:, :, [0, 2]]) and not zero[:, :, [1, 3]].any()
    clamp = replace_activation(z, InterventionConfig(hook="blocks.1.attn.z", heads=(0,), mode="clamp", value=2.5))
    assert torch.all(clamp[:, :, 0] == 2.5) and torch.equal(clamp[:, :, 1:], z[:, :, 1:])
    mean = replace_activation(z, InterventionConfig(hook="blocks.0.attn.z", heads=(2,), mode="mean"))
    torch.testing.assert_close(mean[:, :, 2], z[:, :, 2].mean(dim=(0, 1)).expand(3, 5, 2))
    pattern = torch.rand(3, 4, 5, 5)  # [B, H, Tq, Tk]: heads on axis 1, mean over the batch only
    patched = replace_activation(pattern, InterventionConfig(hook="blocks.0.attn.pattern", heads=(3,), mode="mean"))
    torch.testing.assert_close(patched[:, 3], pattern[:, 3].mean(dim=0).expand(3, 5, 5))
    resid = torch.randn(2, 5, 16)  # no head axis: the whole activation
    assert not replace_activation(resid, InterventionConfig(hook="blocks.0.resid_mid")).any()


def test_intervened_hooks_only_active_steps_and_always_removes_them() -> None:
    model = small_model()
    tokens = torch.randint(0, 11, (2, 8))
    items = [InterventionConfig(hook="blocks.1.attn.z", start_step=3),
             InterventionConfig(hook="blocks.0.attn.z", heads=(0,), in_evals=False)]
    with torch.no_grad():
        plain = model(tokens)
        with intervened(model, items, 0, evaluating=True):  # neither applies
            assert torch.equal(model(tokens), plain)
        with intervened(model, items, 3):
            changed = model(tokens)
    assert not torch.equal(changed, plain)
    assert torch.equal(model(tokens).detach(), plain)  # hooks removed


def test_unknown_hooks_and_heads_are_refused_by_name() -> None:
    model = small_model()
    for item, message in [
        (InterventionConfig(hook="blocks.2.attn.z"), r"interventions\[0\]: the model has no hook point 'blocks.2"),
        (InterventionConfig(hook="blocks.0.resid_pre", heads=(0,)), "has no head axis"),
        (InterventionConfig(hook="blocks.0.attn.q", heads=(4,)), "head 4 does not exist"),
    ]:
        with pytest.raises(ValueError, match=message):
            check_interventions(model, [item])


def test_compile_with_interventions_is_refused() -> None:
    with pytest.raises(ValueError, match="compile"):
        run_config(Path("."), compile=True, interventions=(InterventionConfig(hook="blocks.0.attn.z"),))


def test_a_zeroed_layer_gets_no_gradient(data_dir: Path, tmp_path: Path) -> None:
    """With a layer's every head output zeroed for the whole run, its q/k/v weights never move."""
    config = run_config(data_dir, n_log_evals=0, interventions=(InterventionConfig(hook="blocks.0.attn.z"),))
    config = type(config)(**{**config.__dict__, "optim": type(config.optim)(lr=3e-3, warmup_steps=2, weight_decay=0.0)})
    train(config, tmp_path / "run")
    torch.manual_seed(0)
    fresh = GPT(ModelConfig(n_layer=1, d_model=64, n_head=2, vocab_size=257, context=16))
    trained = load_file(str(tmp_path / "run" / "model.safetensors"))
    assert torch.equal(trained["blocks.0.attn.c_attn.weight"], fresh.blocks[0].attn.c_attn.weight.detach())
    assert not torch.equal(trained["blocks.0.mlp.c_fc.weight"], fresh.blocks[0].mlp.c_fc.weight.detach())


def assert_resume_is_exact(config: RunConfig, tmp_path: Path) -> dict[str, Any]:
    """Train ``config`` uninterrupted (``reference/``) and stopped at its fifth evaluation then resumed (``run/``);
    assert bitwise-equal weights and the same test loss; return the uninterrupted run's summary."""
    reference = train(config, tmp_path / "reference")
    with pytest.raises(StopTraining):
        train(config, tmp_path / "run", progress=stop_at_eval(5))
    resumed = train(config, tmp_path / "run")
    ours, theirs = (load_file(str(tmp_path / d / "model.safetensors")) for d in ("run", "reference"))
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    assert resumed["test_loss"] == reference["test_loss"]
    return reference


def test_resume_with_interventions_is_exact(data_dir: Path, tmp_path: Path) -> None:
    items = (InterventionConfig(hook="blocks.0.attn.z", heads=(1,), start_step=3, stop_step=7),
             InterventionConfig(hook="blocks.0.resid_mid", mode="mean", start_step=6, in_evals=False))
    config = run_config(data_dir, interventions=items)
    reference = assert_resume_is_exact(config, tmp_path)
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert stored["train"]["interventions"][0] == {"hook": "blocks.0.attn.z", "heads": [1], "mode": "zero",
                                                   "value": 0.0, "reference": None, "start_step": 3, "stop_step": 7,
                                                   "in_evals": True}
    plain = train(run_config(data_dir), tmp_path / "plain")
    assert plain["test_loss"] != reference["test_loss"]  # the interventions changed the run


def test_reference_mode_puts_the_reference_models_activation_in_place() -> None:
    """Clamped to another model's layer-0 head outputs, the model computes them exactly, and its later layers
    read them; clamped to a copy of itself, nothing changes."""
    model, other = small_model(), GPT(small_model().config)
    tokens = torch.randint(0, 11, (3, 8))
    item = InterventionConfig(hook="blocks.0.attn.z", heads=(1, 2), mode="reference", reference="other")
    with torch.no_grad():
        _, theirs = run_with_cache(other, tokens, ["blocks.0.attn.z"])
        _, plain = run_with_cache(model, tokens, ["blocks.0.attn.z"])
        with intervened(model, [item], 0, references={"other": other}):
            logits, ours = run_with_cache(model, tokens, ["blocks.0.attn.z"])
        with intervened(model, [item], 0, references={"other": small_model()}):
            unchanged = model(tokens)
    z, z_other, z_plain = ours["blocks.0.attn.z"], theirs["blocks.0.attn.z"], plain["blocks.0.attn.z"]
    assert torch.equal(z[:, :, [1, 2]], z_other[:, :, [1, 2]])
    assert torch.equal(z[:, :, [0, 3]], z_plain[:, :, [0, 3]])
    assert not torch.equal(logits, model(tokens))
    torch.testing.assert_close(unchanged, model(tokens), rtol=0, atol=0)
    with pytest.raises(ValueError, match="no reference model was loaded"), intervened(model, [item], 0):
        pass


def test_clamping_to_a_reference_run_trains_resumes_exactly_and_refuses_bad_references(
    data_dir: Path, tmp_path: Path
) -> None:
    train(run_config(data_dir, mixture="control"), tmp_path / "trained")
    item = InterventionConfig(hook="blocks.0.attn.pattern", mode="reference", reference=str(tmp_path / "trained"))
    config = run_config(data_dir, interventions=(item,))
    uninterrupted = assert_resume_is_exact(config, tmp_path)
    assert uninterrupted["test_loss"] != train(run_config(data_dir), tmp_path / "plain")["test_loss"]

    missing = InterventionConfig(hook="blocks.0.attn.z", mode="reference", reference=str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="reference .*nowhere is not a run directory"):
        train(run_config(data_dir, interventions=(missing,)), tmp_path / "bad")
    wider = RunConfig(**{**run_config(data_dir, mixture="control").__dict__, "model": "tiny-2l"})
    train(wider, tmp_path / "wider")
    other_shape = InterventionConfig(hook="blocks.0.attn.z", mode="reference", reference=str(tmp_path / "wider"))
    with pytest.raises(CheckpointMismatchError, match="another model shape"):
        train(run_config(data_dir, interventions=(other_shape,)), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
