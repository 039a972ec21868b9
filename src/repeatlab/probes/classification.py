"""In-context versus in-weights learning on the in-context classification task (Reddy 2023's two tests).

Both scores look at one prediction per sequence, the query's label, on the evaluation sets that
``repeatlab.data.classification`` writes beside the dataset: ``icl`` (the answer is only in the context) and
``iwl`` (the answer is only in the weights). Accuracy is the argmax over the label tokens, as in Reddy's
classifier; the loss is the cross-entropy over the whole vocabulary, a continuous measure of the same thing.

The ``iwl`` set's query is out of distribution in one respect: in training the query's class is always in the
context, so a model may learn to copy at the query position whatever the context holds. ``pair_scores`` measures
both abilities where training asks for them, on sequences of the training distribution: in-weights accuracy at
the *first* occurrence of a class in a sequence with the fixed labels (only the weights know the label there),
in-context accuracy at *later* occurrences in a relabelled sequence (only the context does).

``query_induction_scores`` is the mechanism behind ICL here, Reddy's induction head: the attention that the
query item pays to the labels that followed its earlier copies (Olsson et al.'s induction targets, read at the
query only). The generic induction probe, on random repeated tokens, need not see it: a model trained only on
item-label pairs can key its copying on the pair structure.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from repeatlab.data.classification import ClassificationTask
from repeatlab.errors import RepeatlabError
from repeatlab.models.gpt import GPT
from repeatlab.models.hooks import hooks
from repeatlab.probes.heads import model_device
from repeatlab.probes.patterns import induction_pattern


@dataclass(frozen=True)
class QueryScore:
    """Accuracy and mean loss of the query label over an evaluation set."""

    accuracy: float
    loss: float


@torch.no_grad()
def pair_scores(model: GPT, rows: Tensor, task: ClassificationTask, *, batch_size: int = 256) -> dict[str, float]:
    """``{"iwl_first": ..., "icl_repeat": ...}`` label accuracies over every pair of training-distribution rows
    ``[n, context + 1]`` (e.g. the test split), see the module docstring; NaN where no pair qualifies."""
    _check_rows(rows, task)
    items, labels = task.pairs(rows)  # [n, P] each
    fixed = (labels == torch.from_numpy(task.class_labels)[items]).all(dim=1)  # [n] rows with the fixed map
    earlier = (items[:, None, :] == items[:, :, None]).tril(diagonal=-1).any(dim=-1)  # [n, P] seen before
    guesses = []
    with _evaluating(model) as device:
        for batch in rows.split(batch_size):
            logits = model(batch[:, : task.context - 1].to(device))[:, task.item_positions]  # [b, P, V]
            guesses.append(logits[..., task.first_label : task.first_label + task.n_labels].argmax(-1).cpu())
    correct = torch.cat(guesses) == labels  # [n, P]
    first = fixed[:, None] & ~earlier
    repeat = ~fixed[:, None] & earlier
    return {"iwl_first": float(correct[first].float().mean()) if first.any() else float("nan"),
            "icl_repeat": float(correct[repeat].float().mean()) if repeat.any() else float("nan")}


@contextmanager
def _evaluating(model: GPT) -> Iterator[torch.device]:
    """Eval mode for the block (train mode restored after), yielding the model's device."""
    was_training = model.training
    model.eval()
    try:
        yield model_device(model)
    finally:
        model.train(was_training)


def _check_rows(rows: Tensor, task: ClassificationTask) -> None:
    if rows.ndim != 2 or rows.shape[1] != task.context + 1:
        raise RepeatlabError(f"rows must be [n, {task.context + 1}] sequences of the task, got {tuple(rows.shape)}")


@torch.no_grad()
def query_score(model: GPT, rows: Tensor, task: ClassificationTask, *, batch_size: int = 256) -> QueryScore:
    """Score the query-label prediction of ``model`` on rows ``[n, context + 1]`` of ``task``."""
    _check_rows(rows, task)
    position, first_label = task.query_position, task.first_label
    correct, losses = 0, []
    with _evaluating(model) as device:
        for batch in rows.split(batch_size):
            batch = batch.to(device)
            logits = model(batch[:, : position + 1])[:, position].float()  # [b, vocab]
            target = batch[:, position + 1]  # [b] the query's label token
            losses.append(F.cross_entropy(logits, target, reduction="none"))
            guess = logits[:, first_label : first_label + task.n_labels].argmax(-1) + first_label  # [b]
            correct += int((guess == target).sum())
    return QueryScore(accuracy=correct / len(rows), loss=float(torch.cat(losses).mean()))


@torch.no_grad()
def query_induction_scores(model: GPT, rows: Tensor, task: ClassificationTask, *, batch_size: int = 256) -> Tensor:
    """``[n_layers, n_heads]`` mean attention of the query item to the labels after its earlier copies, over
    ``icl``-style rows ``[n, context + 1]`` (every row must hold an earlier copy of its query)."""
    _check_rows(rows, task)
    position = task.query_position
    n_layer, n_head = model.config.n_layer, model.config.n_head
    mass = torch.zeros(n_layer, n_head, dtype=torch.float64)
    targets: list[Tensor] = []  # the current batch's [B, Tk] float targets of the query row

    def reducer(layer: int):
        def hook(pattern: Tensor, _name: str) -> None:  # pattern: [B, H, Tq, Tk], read only
            mass[layer] += torch.einsum("bhk,bk->h", pattern[:, :, position].float(), targets[0]).double().cpu()

        return hook

    layers = {f"blocks.{layer}.attn.pattern": reducer(layer) for layer in range(n_layer)}
    with _evaluating(model) as device, hooks(model, layers):
        for batch in rows.split(batch_size):
            inputs = batch[:, : position + 1].to(device)  # [B, T]
            query_targets = induction_pattern(task.by_class(inputs))[:, position].float()  # [B, Tk] same class
            if not bool((query_targets.sum(-1) > 0).all()):
                raise RepeatlabError("a row has no earlier copy of its query item; use the task's icl set")
            targets[:] = [query_targets]
            model(inputs)
    return (mass / len(rows)).float()


__all__ = ["QueryScore", "pair_scores", "query_induction_scores", "query_score"]
