"""``repeatlab data``: prepare a corpus, build repetition mixtures, show what is on disk and what a step trains on."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from repeatlab.cli.common import console, parse_count, print_rows, refuse_without
from repeatlab.cli.errors import OneLineUsageErrors, user_errors
from repeatlab.data.inspection import batch_at_step, decode_batch
from repeatlab.data.mixture import MixtureSpec, check_fits, load_mixture, make_mixture
from repeatlab.data.prepare import PrepareConfig, prepare_dataset
from repeatlab.data.prepared import load_prepared
from repeatlab.data.summary import summarize_mixture, summarize_path, summarize_prepared
from repeatlab.errors import RepeatlabError

app = typer.Typer(help="Prepare corpora and build exact repetition mixtures.", no_args_is_help=True,
                  cls=OneLineUsageErrors)


@app.command()
@user_errors
def prepare(
    source: Annotated[str, typer.Argument(help="builtin, python-stdlib (named sources join with +), a .txt/.jsonl/.parquet file, a directory, or hf:PATH")],
    out: Annotated[Path, typer.Option(help="Directory to create")],
    tokenizer: Annotated[str, typer.Option(help="bpe or byte")] = "bpe",
    vocab_size: Annotated[int | None, typer.Option(help="BPE vocabulary size (default 8192)")] = None,
    tokenizer_from: Annotated[Path | None, typer.Option(help="Reuse this prepared dataset's tokenizer (kind, "
                                                             "vocabulary) instead of training one, to fine-tune a "
                                                             "run trained on it")] = None,
    context: Annotated[int, typer.Option(help="Tokens per sequence")] = 256,
    test_fraction: Annotated[float, typer.Option(help="Share of documents held out for test")] = 0.05,
    seed: Annotated[int, typer.Option(help="Seed of the document split")] = 0,
    text_field: Annotated[str, typer.Option(help="Text field of JSONL/Parquet/hf sources")] = "text",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out")] = False,
) -> None:
    """Split a corpus by document, train a tokenizer (or reuse another dataset's), and write packed token memmaps."""
    if tokenizer not in ("bpe", "byte"):
        raise RepeatlabError(f"--tokenizer must be bpe or byte, got {tokenizer!r}")
    refuse_without("--vocab-size", vocab_size, "--tokenizer bpe", given=tokenizer == "bpe",
                   purpose="a byte tokenizer has its fixed 257 ids and trains nothing")
    config = PrepareConfig(
        source=source,
        text_field=text_field,
        tokenizer=tokenizer,  # type: ignore[arg-type]  # checked above
        vocab_size=PrepareConfig.vocab_size if vocab_size is None else vocab_size,
        context=context,
        test_fraction=test_fraction,
        seed=seed,
        tokenizer_from=str(tokenizer_from) if tokenizer_from is not None else None,
    )
    dataset = prepare_dataset(config, out, overwrite=overwrite, progress=console.log)
    print_rows("prepared dataset", summarize_prepared(dataset))


@app.command()
@user_errors
def mix(
    dataset_dir: Annotated[Path, typer.Argument(help="A prepared dataset directory")],
    total_tokens: Annotated[str, typer.Option(help="Tokens seen in training, e.g. 2M")],
    out: Annotated[Path, typer.Option(help="Mixture directory to create")],
    repeated_fraction: Annotated[float, typer.Option(help="Share f of tokens that are repeats")] = 0.0,
    repeated_epochs: Annotated[int, typer.Option(help="Times E each repeated sequence is seen")] = 1,
    unique_tokens: Annotated[str | None, typer.Option(help="Data-constrained: U unique tokens")] = None,
    seed: Annotated[int, typer.Option(help="Seed of subset choice and order")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out")] = False,
) -> None:
    """Build a control, repeated-subset (f, E) or data-constrained (U) mixture over a prepared dataset."""
    spec = MixtureSpec(
        total_tokens=parse_count(total_tokens),
        repeated_fraction=repeated_fraction,
        repeated_epochs=repeated_epochs,
        unique_tokens=parse_count(unique_tokens) if unique_tokens is not None else None,
        seed=seed,
    )
    mixture = make_mixture(dataset_dir, spec, out, overwrite=overwrite)
    print_rows(f"mixture written to {out}", summarize_mixture(mixture))


@app.command()
@user_errors
def show(path: Annotated[Path, typer.Argument(help="A prepared dataset or mixture directory")]) -> None:
    """Print a human summary of a prepared dataset or a mixture."""
    print_rows(str(path), summarize_path(path))


@app.command("show-batch")
@user_errors
def show_batch(
    mixture_dir: Annotated[Path, typer.Argument(help="A mixture directory (as given to 'repeatlab train --mixture')")],
    step: Annotated[int, typer.Option(help="Training step, from 0")],
    rows: Annotated[int | None, typer.Option(help="Show only the first K rows of the batch")] = None,
    batch_tokens: Annotated[str | None, typer.Option(help="The run's train.batch_tokens, e.g. 8K (default: "
                                                          "train.batch_tokens' default)")] = None,
    dataset: Annotated[Path | None, typer.Option(help="Prepared dataset (default: the one the mixture was "
                                                      "built over)")] = None,
) -> None:
    """Decode the batch the trainer sees at STEP, row by row, marking the rows from the repeated subset."""
    from repeatlab.train.config import TrainConfig  # torch only once a batch is shown: 'data' stays light
    from repeatlab.train.plan import plan_batches

    mixture = load_mixture(mixture_dir)
    source = dataset if dataset is not None else mixture.manifest.get("dataset")
    if source is None:
        raise RepeatlabError(f"mixture {mixture_dir} does not name its dataset; give --dataset")
    data = load_prepared(source)
    check_fits(mixture, data, where=f"mixture {mixture_dir}")
    train = TrainConfig() if batch_tokens is None else TrainConfig(batch_tokens=parse_count(batch_tokens))
    plan = plan_batches(train, context=data.context, world_size=1, n_sequences=mixture.n_sequences)
    batch = batch_at_step(data, mixture, batch_size=plan.batch_sequences, step=step)
    decoded = decode_batch(data, batch, max_rows=rows)
    console.print(f"step {step} (of 0 to {plan.n_steps - 1}): {plan.batch_sequences} sequences of {data.context} "
                  f"tokens, {int(batch.is_repeat.sum())} from the repeated subset; showing {len(decoded)}",
                  soft_wrap=True)
    for row in decoded:
        mark = "[bold red]repeated[/]" if row.is_repeat else "unique"
        console.print(f"[bold]row {row.row}[/]  sequence {row.sequence_id}  {mark}")
        console.print(row.text, markup=False, highlight=False, soft_wrap=True)
