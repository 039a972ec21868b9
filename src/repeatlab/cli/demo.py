"""``repeatlab demo``: the main job on the built-in corpus.

Until training, probes and reports land, the demo runs the data pipeline end to end: prepare the
built-in corpus, build a control and a repeated-subset mixture, and print their summaries. It reuses
finished work, so running it again takes seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from repeatlab.cli.common import console, print_rows
from repeatlab.cli.errors import user_errors
from repeatlab.data.mixture import MixtureSpec, load_mixture, make_mixture
from repeatlab.data.prepare import PrepareConfig, prepare_dataset
from repeatlab.data.prepared import load_prepared
from repeatlab.data.summary import summarize_mixture, summarize_prepared


@user_errors
def demo(out: Annotated[Path, typer.Option(help="Directory for all demo outputs")] = Path("runs/demo")) -> None:
    """Run the main job on the built-in corpus (Wikipedia summaries + Shakespeare)."""
    data_dir = out / "data"
    if (data_dir / "meta.json").is_file():
        dataset = load_prepared(data_dir)
        console.log(f"reusing prepared dataset {data_dir}")
    else:
        dataset = prepare_dataset(PrepareConfig(), data_dir, progress=console.log)
    print_rows("built-in corpus, prepared", summarize_prepared(dataset))
    total = 2_000_000
    specs = {
        "control": MixtureSpec(total_tokens=total),
        "f0.1-E100": MixtureSpec(total_tokens=total, repeated_fraction=0.1, repeated_epochs=100),
    }
    for name, spec in specs.items():
        mix_dir = out / "mixtures" / name
        mixture = load_mixture(mix_dir) if (mix_dir / "manifest.json").is_file() else make_mixture(data_dir, spec, mix_dir)
        print_rows(f"mixture {name}", summarize_mixture(mixture))
