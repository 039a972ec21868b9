"""``repeatlab export``: write a trained run's model in another format (Hugging Face transformers)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from repeatlab.cli.common import console
from repeatlab.cli.errors import user_errors
from repeatlab.errors import RepeatlabError
from repeatlab.models.export import export_hf
from repeatlab.train.run import load_run


@user_errors
def export(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by 'repeatlab train'")],
    out: Annotated[Path, typer.Argument(help="Directory to create")],
    to: Annotated[str, typer.Option(help="Target format: hf (a GPT2LMHeadModel directory)")] = "hf",
    checkpoint: Annotated[str, typer.Option(help="final, latest, or a checkpoint name such as step_0001000")] = "final",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing OUT")] = False,
) -> None:
    """Export a run's weights with its tokenizer, loadable with AutoModelForCausalLM/AutoTokenizer."""
    if to != "hf":
        raise RepeatlabError(f"--to must be hf, got {to!r}")
    run = load_run(run_dir, checkpoint=checkpoint)
    export_hf(run.model, out, tokenizer_file=run.dataset.path / "tokenizer.json", overwrite=overwrite)
    console.print(f"exported {run_dir} ({checkpoint}) to {out}")
