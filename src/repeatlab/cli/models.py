"""``repeatlab models``: list the named model sizes and their parameter counts."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from repeatlab.cli.common import console
from repeatlab.cli.errors import user_errors
from repeatlab.models.sizes import list_sizes


def _human(n: int) -> str:
    for unit, scale in (("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return str(n)


@user_errors
def models(
    vocab_size: Annotated[int, typer.Option(help="Vocabulary size used for the total parameter count")] = 50257,
    context: Annotated[int, typer.Option(help="Context length used for the total parameter count")] = 1024,
) -> None:
    """List the named model sizes: shape, scaling-law N (12 L d^2, or 4 L d^2 attention-only) and exact total.

    ModelConfig checks --vocab-size and --context, as it does for every model."""
    table = Table(title=f"model sizes (vocab {vocab_size}, context {context})", title_justify="left")
    table.add_column("name", no_wrap=True)
    for column in ("layers", "d_model", "heads", "mlp", "N (non-emb.)", "total"):
        table.add_column(column, justify="right", no_wrap=True)
    for row in list_sizes(vocab_size=vocab_size, context=context):
        table.add_row(
            row["name"],
            str(row["n_layer"]),
            str(row["d_model"]),
            str(row["n_head"]),
            "yes" if row["mlp"] else "no",
            _human(row["n_params_scaling_law"]),
            _human(row["n_params"]),
        )
    console.print(table)
