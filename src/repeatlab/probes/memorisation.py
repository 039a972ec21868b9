"""Memorisation as Pythia defines it (Biderman et al. 2023, "Emergent and Predictable Memorization").

A sequence is memorised when greedy decoding from its first ``prefix_tokens`` (32) tokens reproduces the
next ``continuation_tokens`` (32) exactly; the per-token match is the share of those positions where the
free-running greedy continuation equals the true token. Measured on the repeated subset of a mixture,
with sequences seen once and unseen test sequences as baselines, it shows what repetition buys in
verbatim recall. Pythia takes the prefix at the start of each 2049-token training sequence; here it is
the start of each ``context + 1``-token sequence of the training pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from repeatlab.errors import RepeatlabError
from repeatlab.models.decode import prefill, step
from repeatlab.models.gpt import GPT
from repeatlab.models.hooks import hooks
from repeatlab.probes.heads import check_fits, model_device


def logits_from(model: GPT, tokens: Tensor, start: int) -> Tensor:
    """Logits ``[B, T - start, V]`` of positions ``start..T-1`` only.

    The ``ln_final.out`` hook hands the unembedding just those positions, so the teacher-forced pass skips
    the prefix's logits (with a 50k vocabulary the unembedding is much of the work).
    """
    with hooks(model, {"ln_final.out": lambda x, _name: x[:, start:]}):
        return model(tokens)  # [B, T - start, V]


@dataclass(frozen=True)
class MemorisationResult:
    """Memorisation of one group of sequences."""

    n_sequences: int
    exact_match_rate: float | None
    """Share of sequences whose continuation is reproduced exactly; ``None`` for an empty group."""
    token_match_rate: float | None
    """Mean per-token match of the greedy continuation; ``None`` for an empty group."""
    sequence_ids: list[int]
    """Ids (into the group's split) of the sequences measured."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_sequences": self.n_sequences,
            "exact_match_rate": self.exact_match_rate,
            "token_match_rate": self.token_match_rate,
            "sequence_ids": self.sequence_ids,
        }


@torch.no_grad()
def greedy_matches(
    model: GPT, rows: Tensor, *, prefix_tokens: int = 32, continuation_tokens: int = 32, batch_size: int = 64
) -> Tensor:
    """Bool ``[n, continuation_tokens]``: where greedy decoding from ``rows[:, :prefix]`` hits the true tokens.

    One teacher-forced pass finds each row's first wrong prediction: up to it, greedy decoding and
    teacher forcing see the same tokens, so exactly-memorised rows never need decoding. Other rows are
    decoded one token at a time with a KV cache (``models/decode.py``) from the earliest first mistake in
    their batch.
    """
    P, K = prefix_tokens, continuation_tokens
    if P < 1 or K < 1:
        raise RepeatlabError(f"prefix_tokens and continuation_tokens must be at least 1, got {P} and {K}")
    if rows.ndim != 2 or rows.shape[1] < P + K:
        raise RepeatlabError(
            f"memorisation needs sequences of prefix {P} + continuation {K} tokens, got rows of shape "
            f"{tuple(rows.shape)}; the context is too short for it"
        )
    check_fits(model, P + K - 1, "memorisation")
    device = model_device(model)
    out = []
    for batch in rows.split(batch_size):
        truth = batch[:, : P + K].to(device=device, dtype=torch.int64)  # [B, P + K]
        forced = logits_from(model, truth[:, :-1], P - 1).argmax(dim=-1)  # [B, K], prediction of truth[:, P + j]
        hits = forced == truth[:, P:]  # [B, K]
        first_miss = torch.where(hits.all(dim=1), K, (~hits).int().argmax(dim=1))  # [B]
        active = first_miss < K  # [B]
        if active.any():
            buffer = truth[active].clone()  # [A, P + K], overwritten by greedy tokens from the first miss on
            start = int(first_miss[active].min())
            logits, cache = prefill(model, buffer[:, : P + start])  # [A, V], predicting position P + start
            for j in range(start, K):
                buffer[:, P + j] = logits.argmax(dim=-1)  # [A]
                if j + 1 < K:
                    logits, cache = step(model, cache, buffer[:, P + j])  # [A, V]
            hits = hits.clone()
            hits[active] = buffer[:, P:] == truth[active][:, P:]
        out.append(hits.cpu())
    return torch.cat(out) if out else torch.zeros(0, K, dtype=torch.bool)


def memorisation(
    model: GPT,
    rows: Tensor,
    *,
    sequence_ids: list[int] | None = None,
    prefix_tokens: int = 32,
    continuation_tokens: int = 32,
    batch_size: int = 64,
) -> MemorisationResult:
    """Exact-match and per-token-match rates of greedy continuations of ``rows [n, >= prefix + continuation]``."""
    ids = list(range(rows.shape[0])) if sequence_ids is None else [int(i) for i in sequence_ids]
    if rows.shape[0] == 0:
        return MemorisationResult(n_sequences=0, exact_match_rate=None, token_match_rate=None, sequence_ids=[])
    hits = greedy_matches(
        model, rows, prefix_tokens=prefix_tokens, continuation_tokens=continuation_tokens, batch_size=batch_size
    )
    return MemorisationResult(
        n_sequences=rows.shape[0],
        exact_match_rate=float(hits.all(dim=1).double().mean()),
        token_match_rate=float(hits.double().mean()),
        sequence_ids=ids,
    )


__all__ = ["MemorisationResult", "greedy_matches", "memorisation"]
