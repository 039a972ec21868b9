"""Incremental decoding with a key/value cache, built from a ``GPT``'s own submodules and weights.

``GPT.forward`` recomputes every position on every call, so greedy decoding of ``K`` tokens after a
``T``-token prefix costs ``O(K T)`` position-forwards. Here a ``prefill`` runs the prefix once and keeps
each layer's keys and values; every ``step`` then runs one new position per row against them. The maths
is ``GPT.forward``'s, applied to the same modules (``wte``, ``wpe``, ``ln_1``, ``attn.c_attn``,
``attn.c_proj``, ``ln_2``, ``mlp``, ``ln_f``, the tied unembedding), so the logits agree up to float
rounding.

Hook points are bypassed, so a hook that edits activations would silently not apply: ``prefill`` refuses
a model with hooks attached (``step`` skips the check, which would cost a walk over all modules per
token). Decoding with hooks needs ``GPT.forward``.

Shape letters as in ``models/gpt.py``: B batch, T positions (Tk keys), D d_model, H heads, Dh d_head,
V vocab.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from repeatlab.errors import RepeatlabError
from repeatlab.models.gpt import GPT, Attention
from repeatlab.models.hooks import HookPoint


@dataclass(frozen=True)
class KVCache:
    """Keys and values of every layer for the positions decoded so far; each step returns a new cache."""

    keys: tuple[Tensor, ...]
    """Per layer, ``[B, H, T, Dh]``."""
    values: tuple[Tensor, ...]
    """Per layer, ``[B, H, T, Dh]``."""

    @property
    def n_tokens(self) -> int:
        """Positions held, which is also the position of the next token."""
        return self.keys[0].shape[2]


def prefill(model: GPT, tokens: Tensor) -> tuple[Tensor, KVCache]:
    """Run ``tokens [B, T]`` once: the last position's logits ``[B, V]`` and the cache of all ``T`` positions."""
    if tokens.ndim != 2 or tokens.shape[1] < 1:
        raise RepeatlabError(f"tokens must be [batch, pos] with at least one position, got {tuple(tokens.shape)}")
    model.config.require_gpt2("cached decoding")
    _check_no_hooks(model)
    _check_fits(model, tokens.shape[1])
    return _forward(model, tokens, None)


def step(model: GPT, cache: KVCache, tokens: Tensor) -> tuple[Tensor, KVCache]:
    """Append ``tokens [B]``, one per row, at position ``cache.n_tokens``: their logits ``[B, V]`` and the new cache."""
    if tokens.ndim != 1 or tokens.shape[0] != cache.keys[0].shape[0]:
        raise RepeatlabError(
            f"step takes one token per cached row, shape ({cache.keys[0].shape[0]},), got {tuple(tokens.shape)}"
        )
    _check_fits(model, cache.n_tokens + 1)
    return _forward(model, tokens[:, None], cache)


def _forward(model: GPT, tokens: Tensor, cache: KVCache | None) -> tuple[Tensor, KVCache]:
    """``GPT.forward`` for positions ``start..start + T - 1`` given the cache of positions before them."""
    start = 0 if cache is None else cache.n_tokens
    T = tokens.shape[1]  # tokens: [B, T] int64
    pos = torch.arange(start, start + T, device=tokens.device)  # [T]
    x = model.wte(tokens) + model.wpe(pos)  # [B, T, D]
    keys, values = [], []
    for i, block in enumerate(model.blocks):
        past = None if cache is None else (cache.keys[i], cache.values[i])
        attn_out, k, v = _attend(block.attn, block.ln_1(x), past)  # [B, T, D], [B, H, Tk, Dh] twice
        x = x + attn_out  # [B, T, D]
        if block.mlp is not None and block.ln_2 is not None:
            x = x + block.mlp(block.ln_2(x))  # [B, T, D]
        keys.append(k)
        values.append(v)
    x = model.ln_f(x[:, -1])  # [B, D], only the last position is ever needed
    return F.linear(x, model.wte.weight), KVCache(tuple(keys), tuple(values))  # [B, V] (tied unembedding)


def _attend(attn: Attention, x: Tensor, past: tuple[Tensor, Tensor] | None) -> tuple[Tensor, Tensor, Tensor]:
    """``Attention.forward`` for new positions ``x [B, T, D]``; also returns all keys and values so far."""
    B, T, D = x.shape
    qkv = attn.c_attn(x).view(B, T, 3, attn.n_head, attn.d_head)  # [B, T, 3, H, Dh]
    q, k, v = (t.transpose(1, 2) for t in qkv.unbind(dim=2))  # each [B, H, T, Dh]
    if past is not None:
        k = torch.cat([past[0], k], dim=2)  # [B, H, Tk, Dh]
        v = torch.cat([past[1], v], dim=2)  # [B, H, Tk, Dh]
    # A prefill is causal within itself; a step (T = 1, no earlier query to hide) may see every cached key.
    z = F.scaled_dot_product_attention(q, k, v, is_causal=past is None)  # [B, H, T, Dh]
    return attn.c_proj(z.transpose(1, 2).reshape(B, T, D)), k, v  # [B, T, D]


def _check_fits(model: GPT, n_tokens: int) -> None:
    if n_tokens > model.config.context:
        raise RepeatlabError(f"cannot decode position {n_tokens - 1}: the model context is {model.config.context}")


def _check_no_hooks(model: GPT) -> None:
    hooked = [m.name for m in model.modules() if isinstance(m, HookPoint) and m.has_hooks]
    if hooked:
        raise RepeatlabError(
            f"KV-cached decoding bypasses hook points but {hooked[0]!r} has a hook attached; "
            f"run GPT.forward to decode with hooks"
        )


__all__ = ["KVCache", "prefill", "step"]
