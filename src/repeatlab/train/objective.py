"""The training objective, next-token cross-entropy, as one module: the unit that DDP wraps and
``torch.compile`` compiles.

Compiling the model together with its loss lets inductor fuse the tied unembedding, the log-softmax and
its gradient. Eager cross-entropy makes several memory-bound passes over the ``[tokens, vocab]`` logits
and zero-fills a gradient of that size, about 30% of a tiny model's eager CPU step besides the unembedding's
matmuls; compiling the model alone leaves all of that in eager mode (docs/performance.md has the figures).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from repeatlab.models.gpt import GPT


class NextTokenLoss(nn.Module):
    """``forward(inputs [b, T], targets [b, T]) -> mean cross-entropy`` of ``model``'s next-token logits."""

    def __init__(self, model: GPT) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: Tensor, targets: Tensor) -> Tensor:
        logits = self.model(inputs)  # [b, T, V]
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())  # [] (mean over b * T)
