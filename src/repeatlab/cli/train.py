"""``repeatlab train``: train (or resume, or report) one model in a run directory.

Works the same under ``torchrun --nproc_per_node N -m repeatlab.cli.__main__ train ...`` (DDP).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from repeatlab.cli.common import console, parse_count
from repeatlab.cli.errors import user_errors
from repeatlab.config import ConfigError, from_dict, load_toml, override, parse_overrides, to_dict
from repeatlab.dynamics import finetune_config, train_with_probes
from repeatlab.errors import RepeatlabError
from repeatlab.records import read_config
from repeatlab.train.config import PROBE_METRICS, InterventionConfig, RunConfig
from repeatlab.train.run import CONFIG_FILE


@user_errors
def train(
    run_dir: Annotated[Path, typer.Argument(help="Run directory: created, resumed from its last checkpoint, or "
                                                 "reported if finished")],
    dataset: Annotated[str | None, typer.Option(help="Prepared dataset directory")] = None,
    mixture: Annotated[str | None, typer.Option(help="Mixture directory built over that dataset")] = None,
    model: Annotated[str | None, typer.Option(help="Model size name (see 'repeatlab models')")] = None,
    config: Annotated[Path | None, typer.Option(help="RunConfig as TOML or JSON: dataset, mixture, "
                                                     "model and optim/train tables")] = None,
    batch_tokens: Annotated[str | None, typer.Option(help="Global batch in tokens, e.g. 64K")] = None,
    micro_batch_tokens: Annotated[str | None, typer.Option(help="Tokens per forward pass per process")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda")] = None,
    precision: Annotated[str | None, typer.Option(help="auto, fp32 or bf16")] = None,
    compile: Annotated[bool | None, typer.Option("--compile/--no-compile",
                                                 help="torch.compile the model with its loss")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the model initialisation")] = None,
    init_from: Annotated[Path | None, typer.Option(help="Fine-tune from this run directory's weights with a fresh "
                                                         "optimizer; model, dataset and settings default to its own, "
                                                         "with half its learning rate and warm-up")] = None,
    init_checkpoint: Annotated[str | None, typer.Option(help="Weights of --init-from: final (default) or a "
                                                             "checkpoint name such as step_0000120")] = None,
    probe_metrics: Annotated[str | None, typer.Option(help=f"Probe scores logged at every evaluation, comma-"
                                                           f"separated: {','.join(PROBE_METRICS)}")] = None,
    extra_eval: Annotated[list[str] | None, typer.Option(help="Extra held-out loss NAME=SOURCE, SOURCE being "
                                                              "python-stdlib, a prepared dataset or a corpus "
                                                              "(repeatable)")] = None,
    intervention: Annotated[list[str] | None, typer.Option(help="Clamp or ablate during training: HOOK[:heads=0,1]"
                                                                "[:mode=zero|mean|clamp][:value=X][:steps=A-B]"
                                                                "[:evals=no], e.g. blocks.0.attn.z:heads=0,1:"
                                                                "mode=zero:steps=0-200 (repeatable)")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override any field, KEY=TOML value, e.g. --set "
                                                                "train.checkpoint_every=500 (repeatable)")] = None,
) -> None:
    """Train a GPT on a mixture, evaluating on log-spaced steps; safe to kill and re-run with the same command.

    Without --config or --dataset/--mixture/--model, an existing run directory is resumed with its stored config.
    --init-from fine-tunes another run's model; --probe-metrics logs probe curves; --extra-eval adds held-out
    losses (python=python-stdlib: the Python standard library's code); --intervention clamps or ablates heads.
    """
    updates: dict[str, Any] = {
        "dataset": dataset,
        "mixture": mixture,
        "model": model,
        "optim.lr": lr,
        "train.batch_tokens": parse_count(batch_tokens) if batch_tokens else None,
        "train.micro_batch_tokens": parse_count(micro_batch_tokens) if micro_batch_tokens else None,
        "train.device": device,
        "train.precision": precision,
        "train.compile": compile,
        "train.seed": seed,
        "init_from": str(init_from) if init_from is not None else None,
        "init_checkpoint": init_checkpoint,
        "train.probe_metrics": [n.strip() for n in probe_metrics.split(",") if n.strip()] if probe_metrics else None,
        "train.extra_evals": dict(_parse_extra_eval(item) for item in extra_eval) if extra_eval else None,
        "train.interventions": [to_dict(parse_intervention(item)) for item in intervention] if intervention else None,
    }
    updates = {key: value for key, value in updates.items() if value is not None}
    updates.update(parse_overrides(set_ or []))
    run_config = override(_base_config(run_dir, config, updates), updates)
    main = int(os.environ.get("RANK", "0")) == 0
    summary = train_with_probes(run_config, run_dir, progress=_print_event if main else None)
    if main:
        console.print(
            f"[bold]done[/]: {summary['steps']} steps, {summary['tokens']:,} tokens, test loss "
            f"{summary['test_loss']:.4f}, repeated loss {_fmt(summary['repeated_loss'])}; {run_dir}",
            soft_wrap=True,
        )


def _base_config(run_dir: Path, config_file: Path | None, updates: dict[str, Any]) -> RunConfig:
    if config_file is not None:
        if config_file.suffix == ".toml":
            return load_toml(RunConfig, config_file)
        return read_config(RunConfig, config_file)
    if (run_dir / CONFIG_FILE).is_file() and not {"dataset", "mixture", "model"} & set(updates):
        return read_config(RunConfig, run_dir / CONFIG_FILE)
    if "init_from" in updates:
        return _finetune_base(Path(updates["init_from"]), updates)
    missing = [name for name in ("dataset", "mixture", "model") if name not in updates]
    if missing:
        raise ConfigError(
            f"give --{', --'.join(missing)} (or --config FILE), or a run directory that has a {CONFIG_FILE}"
        )
    # Placeholders for the required fields; ``override`` replaces and re-validates them.
    return from_dict(RunConfig, {name: updates[name] for name in ("dataset", "mixture", "model")})


def _finetune_base(source: Path, updates: dict[str, Any]) -> RunConfig:
    """Fine-tuning inherits the source run's model, dataset and settings, with the paper's schedule: half the
    peak learning rate and half the warm-up (any option given on the command line replaces them)."""
    if not (source / CONFIG_FILE).is_file():
        raise ConfigError(f"--init-from {source}: not a run directory (no {CONFIG_FILE})")
    if "mixture" not in updates:
        raise ConfigError("give --mixture: the mixture to fine-tune on (over the source run's dataset or --dataset)")
    pretrained = read_config(RunConfig, source / CONFIG_FILE)
    base = finetune_config(pretrained, source, dataset=updates.get("dataset", pretrained.dataset),
                           mixture=updates["mixture"])
    return replace(base, model=updates.get("model", pretrained.model))



def _parse_extra_eval(item: str) -> tuple[str, str]:
    name, sep, source = item.partition("=")
    if not sep or not name.strip() or not source.strip():
        raise ConfigError(f"--extra-eval expects NAME=SOURCE (e.g. python=python-stdlib), got {item!r}")
    return name.strip(), source.strip()


def parse_intervention(text: str) -> InterventionConfig:
    """``HOOK[:heads=0,1][:mode=zero|mean|clamp][:value=X][:steps=A-B][:evals=yes|no]``; ``steps=A-``: to the end."""
    hook, *options = [part.strip() for part in text.split(":")]
    fields: dict[str, Any] = {"hook": hook}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep:
            raise ConfigError(f"--intervention {text!r}: expected KEY=VALUE after the hook name, got {option!r}")
        try:
            if key == "heads":
                fields["heads"] = tuple(int(h) for h in value.split(",") if h.strip())
            elif key == "mode":
                fields["mode"] = value
            elif key == "value":
                fields["value"] = float(value)
            elif key == "steps":
                start, dash, stop = value.partition("-")
                fields["start_step"] = int(start) if start else 0
                fields["stop_step"] = int(stop) if dash and stop else None
            elif key == "evals":
                if value not in ("yes", "no"):
                    raise RepeatlabError(f"evals must be yes or no, got {value!r}")
                fields["in_evals"] = value == "yes"
            else:
                raise RepeatlabError(f"unknown key {key!r} (heads, mode, value, steps, evals)")
        except ValueError as exc:
            raise ConfigError(f"--intervention {text!r}: {exc}") from None
    return from_dict(InterventionConfig, {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()})


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _print_event(event: dict[str, Any]) -> None:
    kind = event["event"]
    if kind == "skip_checkpoint":
        console.print(f"skipping a damaged checkpoint: {event['reason']}", soft_wrap=True)
    elif kind in ("start", "resume"):
        verb = "resuming at" if kind == "resume" else "starting at"
        console.print(f"{verb} step {event['step']}/{event['n_steps']} ({event['n_params']:,} parameters, "
                      f"{event['batch_tokens']:,} tokens per step)", soft_wrap=True)
    elif kind == "eval":
        speed = f"{event['tokens_per_s']:,.0f} tok/s" if event["tokens_per_s"] else "-"
        train_loss = _fmt(event["train_loss"])
        extras = "".join(f"  {key.removesuffix('_loss')} {_fmt(value)}" for key, value in event.items()
                         if key.endswith("_loss") and key not in ("train_loss", "test_loss", "repeated_loss"))
        probes = "".join(f"  {key} {value:.3f}" for key, value in event.items()
                         if key.endswith((".max", ".score")) and isinstance(value, float))
        console.print(
            f"step {event['step']:>7}  tokens {event['tokens_seen']:>12,}  train {train_loss}  test "
            f"{event['test_loss']:.4f}  repeated {_fmt(event['repeated_loss'])}{extras}{probes}  "
            f"lr {event['lr']:.2e}  {speed}",
            soft_wrap=True,
        )

