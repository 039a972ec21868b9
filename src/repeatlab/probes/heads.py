"""Per-head scores ``[n_layers, n_heads]``: attention-pattern scores and the OV-circuit copying score.

Attention scores are reduced inside the ``blocks.{i}.attn.pattern`` hooks, batch by batch, so only one
layer's pattern of one batch is ever alive (probing a 12-layer model never caches 12 full patterns).
The hooks only read the pattern; they never modify it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import torch
from torch import Tensor

from repeatlab.errors import RepeatlabError
from repeatlab.models.gpt import GPT
from repeatlab.models.hooks import HookFn, hooks
from repeatlab.probes.patterns import get_pattern

Head = tuple[int, int]
"""A head as ``(layer, head)``."""
QueryAverage = Literal["targeted", "all"]
"""Which queries a head's attention-pattern score averages over. ``"targeted"`` (repeatlab's): the queries with at
least one target, so a perfect head scores 1. ``"all"``: every query, targets or not, as TransformerLens's
``detect_head`` (``error_measure="mul"``) does, so a perfect head scores ``n_targeted / T``. On sequences that all
have ``n_targeted`` targeted queries among ``T`` (the probe's repeated random tokens), all = targeted * n_targeted / T;
induction on a start token plus a span of L repeated twice has n_targeted = L and T = 2L + 1."""
ZERO_CIRCUIT_RTOL = 1e-10
"""An OV circuit whose eigenvalues sum to less than this share of their bound is zero up to float64 rounding."""


def model_device(model: GPT) -> torch.device:
    return next(model.parameters()).device


def check_heads(model: GPT, heads: Sequence[Head]) -> None:
    """Raise ``ValueError`` naming the first head the model does not have."""
    n_layer, n_head = model.config.n_layer, model.config.n_head
    for layer, head in heads:
        if not (0 <= layer < n_layer and 0 <= head < n_head):
            raise RepeatlabError(
                f"head {layer}.{head} does not exist: the model has layers 0..{n_layer - 1} "
                f"and heads 0..{n_head - 1} per layer"
            )


def check_fits(model: GPT, n_tokens: int, probe: str) -> None:
    """Raise ``ValueError`` when a probe needs sequences longer than the model's context."""
    check_context(model.config.context, n_tokens, probe)


def check_context(context: int, n_tokens: int, probe: str) -> None:
    """Raise ``ValueError`` when a probe needs sequences longer than a model context of ``context`` tokens."""
    if n_tokens > context:
        raise RepeatlabError(
            f"the {probe} probe needs sequences of {n_tokens} tokens but the model's context is "
            f"{context}; choose shorter probe settings or leave this probe out"
        )


@torch.no_grad()
def attention_scores(
    model: GPT, tokens: Tensor, names: Sequence[str], *, batch_size: int = 32, queries: QueryAverage = "targeted"
) -> dict[str, Tensor]:
    """Score every head against detection patterns: ``{name: [n_layers, n_heads]}`` float32 on CPU.

    A head's score for pattern ``name`` is the attention mass each query puts on its targets
    (``patterns.PATTERNS[name](tokens)``), averaged over all queries of all sequences that have at least
    one target. Perfect heads score 1; a head attending uniformly scores roughly ``1 / position``.
    ``queries="all"`` averages over every query instead, TransformerLens's normalisation (``QueryAverage``).
    """
    if tokens.ndim != 2:
        raise RepeatlabError(f"tokens must be [batch, pos], got shape {tuple(tokens.shape)}")
    if queries not in get_args(QueryAverage):
        raise RepeatlabError(f"queries must be one of {', '.join(get_args(QueryAverage))}, got {queries!r}")
    check_fits(model, tokens.shape[1], "attention-pattern")
    functions = {name: get_pattern(name) for name in names}
    n_layer, n_head = model.config.n_layer, model.config.n_head
    device = model_device(model)
    mass = {name: torch.zeros(n_layer, n_head, dtype=torch.float64, device=device) for name in functions}
    n_queries = dict.fromkeys(functions, 0)
    has_target = dict.fromkeys(functions, False)
    masks: dict[str, Tensor] = {}  # the current batch's float masks [B, Tq, Tk], read by the hooks

    def reducer(layer: int) -> HookFn:
        def hook(pattern: Tensor, _name: str) -> None:  # pattern: [B, H, Tq, Tk], read only
            for name, mask in masks.items():
                per_query = torch.einsum("bhqk,bqk->bhq", pattern, mask)  # [B, H, Tq]
                mass[name][layer] += per_query.sum(dim=(0, 2)).double()  # queries without targets add 0

        return hook

    with hooks(model, {f"blocks.{layer}.attn.pattern": reducer(layer) for layer in range(n_layer)}):
        for batch in tokens.split(batch_size):
            batch = batch.to(device)  # [B, T]
            masks.clear()
            for name, fn in functions.items():
                mask = fn(batch)  # [B, Tq, Tk] bool
                targeted = int(mask.any(dim=-1).sum())
                n_queries[name] += targeted if queries == "targeted" else batch.numel()
                has_target[name] |= targeted > 0
                masks[name] = mask.float()
            model(batch)
    masks.clear()
    empty = [name for name, found in has_target.items() if not found]
    if empty:
        raise RepeatlabError(f"no query of the given tokens has a {empty[0]!r} target; the score is undefined")
    return {name: (mass[name] / n_queries[name]).float().cpu() for name in functions}


@torch.no_grad()
def ov_copying_scores(model: GPT) -> Tensor:
    """Copying score ``sum(lambda) / sum(|lambda|)`` of each head's full OV circuit: ``[n_layers, n_heads]``.

    The full OV circuit (Elhage et al. 2021) maps a token through the embedding, the head's value and
    output weights and the unembedding: ``W_E W_V^h W_O^h W_U``, a ``[V, V]`` matrix whose positive
    eigenvalues mean the head raises the logit of the token it attends to. As in TransformerLens with
    ``fold_ln`` and ``center_unembed``, LayerNorm weights and mean-centring are folded in (``ln_1`` before
    the head, ``ln_f`` before the unembedding) and logits are centred over the vocabulary (softmax
    ignores a shift); LayerNorm's per-position scale is a positive factor that the ratio ignores, and
    biases and position embeddings are left out. The eigenvalues are computed exactly from the
    ``[d_head, d_head]`` matrix ``W_O P Γ_f W_E^T C W_E P Γ_1 W_V``, which has the same non-zero
    eigenvalues as the ``[V, V]`` circuit (``XY`` and ``YX`` share them). A head whose circuit is zero
    scores 0, and so does one that is zero up to rounding: eigenvalues summing to less than
    ``ZERO_CIRCUIT_RTOL`` of the bound ``d_head |W_O| |readout| |W_V|`` are noise, whose ratio means nothing.
    """
    cfg = model.config
    D, H, Dh = cfg.d_model, cfg.n_head, cfg.d_head
    W_E = model.wte.weight.detach().double()  # [V, D], on the model's device: the one large product
    W_Ec = W_E - W_E.mean(dim=0, keepdim=True)  # [V, D], logits centred over the vocabulary
    gram = (W_Ec.T @ W_Ec).cpu()  # [D, D] = W_E^T C W_E
    centre = torch.eye(D, dtype=torch.float64) - 1.0 / D  # [D, D], LayerNorm's mean subtraction
    gamma_f = model.ln_f.weight.detach().double().cpu()  # [D]
    readout = centre @ (gamma_f[:, None] * gram) @ centre  # [D, D] = P Γ_f W_E^T C W_E P
    circuits, bounds = [], []
    for block in model.blocks:
        gamma_1 = block.ln_1.weight.detach().double().cpu()  # [D]
        W_V = block.attn.c_attn.weight.detach().double().cpu()[2 * D :].T  # [D_in, D_out=H*Dh]
        W_V = (gamma_1[:, None] * W_V).view(D, H, Dh)  # [D, H, Dh], ln_1 weight folded in
        W_O = block.attn.c_proj.weight.detach().double().cpu().T.reshape(H, Dh, D)  # [H, Dh, D]
        circuits.append(torch.einsum("hai,ij,jhb->hab", W_O, readout, W_V))  # [H, Dh, Dh]
        bounds.append(Dh * W_O.flatten(1).norm(dim=1) * readout.norm() * W_V.permute(1, 0, 2).flatten(1).norm(dim=1))
    eig = torch.linalg.eigvals(torch.stack(circuits))  # [L, H, Dh] complex
    total = eig.real.sum(dim=-1)  # [L, H]; the imaginary parts cancel in conjugate pairs
    size = eig.abs().sum(dim=-1)  # [L, H]
    nonzero = size > ZERO_CIRCUIT_RTOL * torch.stack(bounds)  # [L, H]
    scores = torch.where(nonzero, total / size.clamp_min(torch.finfo(torch.float64).tiny), 0.0)
    return scores.float()


def top_heads(scores: Tensor, k: int) -> list[Head]:
    """The ``k`` heads with the highest scores, best first (ties broken by layer, then head)."""
    if scores.ndim != 2:
        raise RepeatlabError(f"scores must be [n_layers, n_heads], got shape {tuple(scores.shape)}")
    n_head = scores.shape[1]
    flat = scores.flatten()
    order = sorted(range(flat.numel()), key=lambda i: (-float(flat[i]), i))[:k]
    return [(i // n_head, i % n_head) for i in order]


__all__ = [
    "Head",
    "QueryAverage",
    "attention_scores",
    "check_context",
    "check_fits",
    "check_heads",
    "model_device",
    "ov_copying_scores",
    "top_heads",
]
