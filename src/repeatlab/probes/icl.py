"""Loss-based probes: per-token test loss, the in-context-learning score and the copying eval.

In-context-learning score (Olsson et al. 2022): the loss at token 500 minus the loss at token 50,
averaged over test contexts. "The loss at token t" is the loss of predicting the token at index t
(0-based) of a context from the t tokens before it. Contexts shorter than 512 tokens use the same
*ratio* of positions, ``round(50 C / 512)`` and ``round(500 C / 512)``, and the positions used are
always recorded. A negative score means the model predicts later tokens better: it uses its context.

Copying eval (Hernandez et al. 2022): one paragraph copied ``n_copies`` (11) times in one context after
a start token; the loss on each copy. A model with working induction heads predicts copies 2..11
almost perfectly, and Hernandez et al. found repeated training data degrades exactly this. Paragraphs
come from the test split, which by construction is never part of the training pool (so never
repeated); this module only takes the tokens, and the suite records which test sequence and offset
each paragraph came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from repeatlab.errors import RepeatlabError
from repeatlab.models.gpt import GPT
from repeatlab.probes.heads import check_fits, model_device

ICL_POSITIONS = (50, 500)
"""Olsson et al.'s token positions of the in-context-learning score."""
ICL_REFERENCE_CONTEXT = 512
"""Contexts at least this long use ``ICL_POSITIONS`` as they are; shorter ones scale them."""


@torch.no_grad()
def token_losses(model: GPT, rows: Tensor, *, batch_size: int = 16) -> Tensor:
    """Cross-entropy ``[n, T]`` (float32, CPU) of rows ``[n, T + 1]``: entry ``t`` predicts ``rows[:, t + 1]``."""
    if rows.ndim != 2 or rows.shape[1] < 2:
        raise RepeatlabError(f"rows must be [n, T + 1] with T >= 1, got shape {tuple(rows.shape)}")
    check_fits(model, rows.shape[1] - 1, "loss")
    device = model_device(model)
    out = []
    for batch in rows.split(batch_size):
        batch = batch.to(device=device, dtype=torch.int64)  # [B, T + 1]
        logits = model(batch[:, :-1]).float()  # [B, T, V]
        ce = F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten(), reduction="none")  # [B * T]
        ce = ce.view(batch.shape[0], -1)  # [B, T]
        out.append(ce.cpu())
    return torch.cat(out)


def icl_positions(context: int) -> tuple[int, int]:
    """The ``(early, late)`` token positions of the ICL score for a context length (see module docstring)."""
    if context >= ICL_REFERENCE_CONTEXT:
        return ICL_POSITIONS
    early = max(1, round(ICL_POSITIONS[0] * context / ICL_REFERENCE_CONTEXT))
    late = min(context, round(ICL_POSITIONS[1] * context / ICL_REFERENCE_CONTEXT))
    if late <= early:
        raise RepeatlabError(f"context {context} is too short for the in-context-learning score")
    return early, late


@dataclass(frozen=True)
class IclResult:
    """In-context-learning score and test loss of one set of test contexts."""

    positions: tuple[int, int]
    """``(early, late)`` token positions compared."""
    score: float
    """``loss_late - loss_early``; negative when the model learns in context."""
    loss_early: float
    loss_late: float
    test_loss: float
    """Mean loss over every token of the contexts."""
    loss_by_position: list[float]
    """Mean loss at token positions ``1..T`` (entry ``t - 1`` is token ``t``)."""
    n_sequences: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "positions": list(self.positions),
            "score": self.score,
            "loss_early": self.loss_early,
            "loss_late": self.loss_late,
            "test_loss": self.test_loss,
            "loss_by_position": self.loss_by_position,
            "n_sequences": self.n_sequences,
        }


def icl_from_losses(losses: Tensor, positions: tuple[int, int]) -> IclResult:
    """Summarise per-token losses ``[n, T]`` (from ``token_losses``) into an ``IclResult``."""
    early, late = positions
    T = losses.shape[1]
    if not 1 <= early < late <= T:
        raise RepeatlabError(f"ICL positions {positions} must satisfy 1 <= early < late <= {T} (the context length)")
    by_position = losses.double().mean(dim=0)  # [T]
    return IclResult(
        positions=(early, late),
        score=float(by_position[late - 1] - by_position[early - 1]),
        loss_early=float(by_position[early - 1]),
        loss_late=float(by_position[late - 1]),
        test_loss=float(losses.double().mean()),
        loss_by_position=[round(float(x), 6) for x in by_position],
        n_sequences=losses.shape[0],
    )


def icl_score(
    model: GPT, rows: Tensor, *, positions: tuple[int, int] | None = None, batch_size: int = 16
) -> IclResult:
    """ICL score and test loss on test rows ``[n, context + 1]``; positions default to ``icl_positions``."""
    losses = token_losses(model, rows, batch_size=batch_size)
    return icl_from_losses(losses, positions or icl_positions(losses.shape[1]))


def choose_paragraphs(
    rows: np.ndarray, *, n_paragraphs: int, length: int, eot_id: int, generator: torch.Generator
) -> tuple[Tensor, list[dict[str, int]]]:
    """Pick up to ``n_paragraphs`` windows of ``length`` tokens inside one document each.

    Rows ``[n, C + 1]`` are visited in a seeded random order; from each, the first stretch of at least
    ``length`` tokens without an end-of-text token gives one paragraph (from its start). Returns the
    paragraphs ``[P, length]`` and, for each, ``{"sequence_id", "offset", "n_tokens"}``.
    """
    if length < 1 or length > rows.shape[1]:
        raise RepeatlabError(f"paragraph length must be in 1..{rows.shape[1]}, got {length}")
    chosen: list[np.ndarray] = []
    records: list[dict[str, int]] = []
    for seq_id in torch.randperm(rows.shape[0], generator=generator).tolist():
        row = np.asarray(rows[seq_id], dtype=np.int64)
        bounds = np.concatenate([[-1], np.flatnonzero(row == eot_id), [len(row)]])
        gaps = np.flatnonzero(np.diff(bounds) - 1 >= length)
        if len(gaps) == 0:
            continue
        offset = int(bounds[gaps[0]] + 1)
        chosen.append(row[offset : offset + length])
        records.append({"sequence_id": int(seq_id), "offset": offset, "n_tokens": length})
        if len(chosen) == n_paragraphs:
            break
    if not chosen:
        raise RepeatlabError(
            f"no test document has {length} tokens without an end-of-text token; "
            f"use a shorter copying paragraph (copy_paragraph_tokens)"
        )
    return torch.from_numpy(np.stack(chosen)), records


@dataclass(frozen=True)
class CopyingResult:
    """Loss on each copy of paragraphs repeated in one context, averaged over paragraphs."""

    loss_per_copy: list[float]
    """Mean loss on copy ``1..n_copies``."""
    paragraphs: list[dict[str, int]]
    """Where each paragraph came from (``sequence_id``/``offset`` in the test split) and its length."""

    @property
    def first_copy_loss(self) -> float:
        return self.loss_per_copy[0]

    @property
    def repeated_copies_loss(self) -> float:
        """Mean loss on copies 2..n: what induction heads make cheap."""
        later = self.loss_per_copy[1:]
        return sum(later) / len(later)

    def to_dict(self) -> dict[str, Any]:
        return {
            "loss_per_copy": self.loss_per_copy,
            "first_copy_loss": self.first_copy_loss,
            "repeated_copies_loss": self.repeated_copies_loss,
            "n_copies": len(self.loss_per_copy),
            "paragraphs": self.paragraphs,
        }


def copying_eval(
    model: GPT,
    paragraphs: Tensor,
    *,
    n_copies: int = 11,
    start_token: int,
    records: list[dict[str, int]] | None = None,
    batch_size: int = 16,
) -> CopyingResult:
    """Loss on each of ``n_copies`` copies of each paragraph ``[P, L]`` in ``[start, p, p, …]``."""
    if n_copies < 2:
        raise RepeatlabError(f"n_copies must be at least 2, got {n_copies}")
    if paragraphs.ndim != 2:
        raise RepeatlabError(f"paragraphs must be [n, length], got shape {tuple(paragraphs.shape)}")
    P, L = paragraphs.shape
    check_fits(model, n_copies * L, "copying")
    start = torch.full((P, 1), start_token, dtype=torch.int64)  # [P, 1]
    rows = torch.cat([start, paragraphs.to(torch.int64).repeat(1, n_copies)], dim=1)  # [P, 1 + n_copies L]
    losses = token_losses(model, rows, batch_size=batch_size)  # [P, n_copies L]; entry t predicts token t + 1
    per_copy = losses.double().view(P, n_copies, L).mean(dim=(0, 2))  # [n_copies]
    return CopyingResult(
        loss_per_copy=[float(x) for x in per_copy],
        paragraphs=records if records is not None else [{"n_tokens": L} for _ in range(P)],
    )


__all__ = [
    "ICL_POSITIONS",
    "ICL_REFERENCE_CONTEXT",
    "CopyingResult",
    "IclResult",
    "choose_paragraphs",
    "copying_eval",
    "icl_from_losses",
    "icl_positions",
    "icl_score",
    "token_losses",
]
