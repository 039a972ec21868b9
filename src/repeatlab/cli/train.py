"""``repeatlab train``: train (or resume, or report) one model in a run directory.

Works the same under ``torchrun --nproc_per_node N -m repeatlab.cli.__main__ train ...`` (DDP).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from repeatlab.cli.common import console, parse_count
from repeatlab.cli.errors import user_errors
from repeatlab.config import ConfigError, from_dict, load_json, load_toml, override
from repeatlab.train.config import RunConfig
from repeatlab.train.run import CONFIG_FILE, train as train_run


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
    compile: Annotated[bool | None, typer.Option("--compile/--no-compile", help="torch.compile the model")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the model initialisation")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override any field, e.g. --set "
                                                                "train.checkpoint_every=500 (repeatable)")] = None,
) -> None:
    """Train a GPT on a mixture, evaluating on log-spaced steps; safe to kill and re-run with the same command.

    Without --config or --dataset/--mixture/--model, an existing run directory is resumed with its stored config.
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
    }
    updates = {key: value for key, value in updates.items() if value is not None}
    updates.update(_parse_sets(set_ or []))
    run_config = override(_base_config(run_dir, config, updates), updates)
    main = int(os.environ.get("RANK", "0")) == 0
    summary = train_run(run_config, run_dir, progress=_print_event if main else None)
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
        return load_json(RunConfig, config_file)
    if (run_dir / CONFIG_FILE).is_file() and not {"dataset", "mixture", "model"} & set(updates):
        return load_json(RunConfig, run_dir / CONFIG_FILE)
    missing = [name for name in ("dataset", "mixture", "model") if name not in updates]
    if missing:
        raise ConfigError(
            f"give --{', --'.join(missing)} (or --config FILE), or a run directory that has a {CONFIG_FILE}"
        )
    # Placeholders for the required fields; ``override`` replaces and re-validates them.
    return from_dict(RunConfig, {name: updates[name] for name in ("dataset", "mixture", "model")})


def _parse_sets(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are read as JSON (numbers, true/false, null), else kept as strings."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE (e.g. train.eval_every=100), got {item!r}")
        try:
            out[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            out[key.strip()] = text
    return out


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _print_event(event: dict[str, Any]) -> None:
    kind = event["event"]
    if kind in ("start", "resume"):
        verb = "resuming at" if kind == "resume" else "starting at"
        console.print(f"{verb} step {event['step']}/{event['n_steps']} ({event['n_params']:,} parameters, "
                      f"{event['batch_tokens']:,} tokens per step)", soft_wrap=True)
    elif kind == "eval":
        speed = f"{event['tokens_per_s']:,.0f} tok/s" if event["tokens_per_s"] else "-"
        train_loss = _fmt(event["train_loss"])
        console.print(
            f"step {event['step']:>7}  tokens {event['tokens_seen']:>12,}  train {train_loss}  test "
            f"{event['test_loss']:.4f}  repeated {_fmt(event['repeated_loss'])}  lr {event['lr']:.2e}  {speed}",
            soft_wrap=True,
        )

