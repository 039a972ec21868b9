"""The training objective as one module: the unit that DDP wraps and ``torch.compile`` compiles, and the summed
loss the evaluator averages, so training and evaluation score a batch the same way.

A token model's objective is next-token cross-entropy; a vector model's (in-context regression,
``data.regression``) is half the squared error at the positions whose target is not NaN (von Oswald et al.'s
``L = 1/2 (y_hat - y)^2`` at the query).

Compiling the model together with its loss lets inductor fuse the tied unembedding, the log-softmax and
its gradient. Eager cross-entropy makes several memory-bound passes over the ``[tokens, vocab]`` logits
and zero-fills a gradient of that size, about 30% of a tiny model's eager CPU step besides the unembedding's
matmuls; compiling the model alone leaves all of that in eager mode (docs/performance.md has the figures).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from repeatlab.models.gpt import GPT


def squared_error_sum(predictions: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """``(sum of (y_hat - y)^2 / 2, number of targets)`` over the entries of ``targets`` that are not NaN."""
    has_target = ~torch.isnan(targets)  # [B, T]
    error = torch.where(has_target, predictions - targets, 0.0)  # [B, T]; no NaN reaches the gradient
    return 0.5 * (error.float() ** 2).sum(), has_target.sum()


class TrainingLoss(nn.Module):
    """``forward(inputs, targets) -> mean loss`` of ``model``: next-token cross-entropy over ``[b, T]`` tokens, or
    for a vector model the mean of ``squared_error_sum`` over its ``[b, T]`` targets."""

    def __init__(self, model: GPT) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: Tensor, targets: Tensor) -> Tensor:
        outputs = self.model(inputs)  # [b, T, V] logits, or [b, T] predictions
        if self.model.vectors:
            total, count = squared_error_sum(outputs, targets)
            return total / count  # []
        return F.cross_entropy(outputs.flatten(0, 1), targets.flatten())  # [] (mean over b * T)


def summed_loss(model: GPT, inputs: Tensor, targets: Tensor) -> tuple[Tensor, int]:
    """``(sum of the loss over the batch's targets in float32, number of targets)``: what the evaluator adds up."""
    outputs = model(inputs)  # [b, T, V] logits, or [b, T] predictions
    if model.vectors:
        total, count = squared_error_sum(outputs, targets)
        return total, int(count)
    return F.cross_entropy(outputs.flatten(0, 1).float(), targets.flatten(), reduction="sum"), targets.numel()
