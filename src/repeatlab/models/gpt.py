"""A decoder-only GPT-2-style transformer with named hook points, readable top to bottom.

The architecture matches Hugging Face ``GPT2LMHeadModel`` exactly (so ``models/export.py`` is a pure
weight copy): token + learned absolute position embeddings, pre-LayerNorm blocks, fused qkv attention
with biases, a 4x GELU(tanh) MLP, a final LayerNorm and an unembedding tied to the token embedding.
``mlp=False`` drops the MLP sublayers, giving the attention-only models of Olsson et al. (2022).

Vector models (``d_vector`` set) are the same network on continuous inputs, for in-context regression
(von Oswald et al. 2022): a linear input head replaces the token embedding and a linear output head reads one
number per position instead of logits. With ``attention="linear"``, no LayerNorm, no position embedding and no
biases, a block is von Oswald et al.'s linear self-attention layer, ``e_j += sum_i (W_v e_i)(W_k e_i . W_q e_j) / n``.

Shape letters: B batch, T positions (Tq/Tk query/key), D d_model, H heads, Dh d_head, V vocab.
Hook points (see ``models/hooks.py``) are identities unless a hook is attached; the attention pattern
is only materialised when a hook on ``blocks.{i}.attn.pattern`` asks for it, otherwise attention runs
through ``scaled_dot_product_attention`` (flash attention on GPU).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from repeatlab.config import check_context, check_vocab_size
from repeatlab.errors import RepeatlabError
from repeatlab.models.hooks import HookPoint

AttentionKind = Literal["softmax", "linear"]
ATTENTION_KINDS: tuple[AttentionKind, ...] = get_args(AttentionKind)


@dataclass(kw_only=True, frozen=True)
class ModelConfig:
    """Shape of a GPT; everything needed to rebuild the model from a checkpoint."""

    n_layer: int
    """Number of transformer blocks."""
    d_model: int
    """Width of the residual stream."""
    n_head: int
    """Attention heads per layer; must divide ``d_model``."""
    vocab_size: int
    """Number of token ids (rows of the tied embedding/unembedding); 0 for a vector model, which has none."""
    context: int
    """Maximum sequence length (rows of the position embedding)."""
    mlp: bool = True
    """Whether blocks have an MLP sublayer; ``False`` gives an attention-only model."""
    layer_norm_eps: float = 1e-5
    """Epsilon of every LayerNorm (GPT-2 uses 1e-5)."""
    init_std: float = 0.02
    """Std of the normal init of weights; residual output projections use ``init_std / sqrt(2 n_layer)``."""
    d_vector: int | None = None
    """Width of the input vectors of a vector model (in-context regression); ``None`` for a token model."""
    attention: AttentionKind = "softmax"
    """``softmax``: GPT-2's attention; ``linear``: the scores used as they are, without softmax or the
    ``1/sqrt(d_head)`` scale, averaged over the keys a query sees (von Oswald et al.'s linear self-attention)."""
    layer_norm: bool = True
    """Whether blocks and the output have LayerNorms (von Oswald et al.'s layers have none)."""
    positions: bool = True
    """Whether a learned position embedding is added (linear self-attention on regression pairs has none: the
    pairs are exchangeable)."""
    bias: bool = True
    """Whether linear layers have biases."""

    def __post_init__(self) -> None:
        for name in ("n_layer", "d_model", "n_head"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise RepeatlabError(f"ModelConfig.{name} must be a positive integer, got {value!r}")
        check_context("ModelConfig.context", self.context)
        if self.d_vector is None:
            check_vocab_size("ModelConfig.vocab_size", self.vocab_size)
        elif not isinstance(self.d_vector, int) or isinstance(self.d_vector, bool) or self.d_vector < 1:
            raise RepeatlabError(f"ModelConfig.d_vector must be a positive integer or null, got {self.d_vector!r}")
        elif self.vocab_size != 0:
            raise RepeatlabError(f"ModelConfig.vocab_size must be 0 for a vector model (d_vector = {self.d_vector}), "
                                 f"got {self.vocab_size!r}")
        if self.attention not in ATTENTION_KINDS:
            raise RepeatlabError(f"ModelConfig.attention must be one of {', '.join(ATTENTION_KINDS)}, "
                                 f"got {self.attention!r}")
        for name in ("layer_norm", "positions", "bias"):
            if not isinstance(getattr(self, name), bool):
                raise RepeatlabError(f"ModelConfig.{name} must be true or false, got {getattr(self, name)!r}")
        if self.d_model % self.n_head:
            raise RepeatlabError(
                f"ModelConfig.d_model={self.d_model} is not divisible by n_head={self.n_head}"
            )
        if not isinstance(self.mlp, bool):
            raise RepeatlabError(f"ModelConfig.mlp must be true or false, got {self.mlp!r}")
        if not self.layer_norm_eps > 0:
            raise RepeatlabError(f"ModelConfig.layer_norm_eps must be > 0, got {self.layer_norm_eps!r}")
        if not self.init_std > 0:
            raise RepeatlabError(f"ModelConfig.init_std must be > 0, got {self.init_std!r}")

    @property
    def is_gpt2(self) -> bool:
        """Whether this is GPT-2's architecture (tokens, softmax attention, LayerNorms, positions, biases), which
        the Hugging Face export and the cached decoder implement."""
        return (self.d_vector is None and self.attention == "softmax" and self.layer_norm and self.positions
                and self.bias)

    def require_gpt2(self, what: str) -> None:
        """Refuse ``what`` (a feature written for GPT-2's architecture) for any other model."""
        if not self.is_gpt2:
            raise RepeatlabError(f"{what} needs a GPT-2-architecture token model; this model has d_vector="
                                 f"{self.d_vector}, attention={self.attention!r}, layer_norm={self.layer_norm}, "
                                 f"positions={self.positions}, bias={self.bias}")

    @property
    def d_head(self) -> int:
        """Width of one attention head."""
        return self.d_model // self.n_head

    @property
    def n_params_scaling_law(self) -> int:
        """The scaling-law parameter count N of Kaplan et al. / Hernandez et al.: weight matrices only.

        ``12 n_layer d_model^2`` with MLPs (4 D^2 attention + 8 D^2 MLP) and ``4 n_layer d_model^2``
        attention-only. Biases, LayerNorms and both embeddings are excluded; ``GPT.n_params`` counts
        the exact number of parameters instead.
        """
        per_layer = 12 if self.mlp else 4
        return per_layer * self.n_layer * self.d_model**2


class Attention(nn.Module):
    """Causal multi-head self-attention with a fused qkv projection."""

    def __init__(self, config: ModelConfig, layer: int) -> None:
        super().__init__()
        self.n_head, self.d_head, self.linear = config.n_head, config.d_head, config.attention == "linear"
        self.c_attn = nn.Linear(config.d_model, 3 * config.d_model, bias=config.bias)  # fused q, k, v
        self.c_proj = nn.Linear(config.d_model, config.d_model, bias=config.bias)
        prefix = f"blocks.{layer}.attn"
        self.hook_q = HookPoint(f"{prefix}.q")
        self.hook_k = HookPoint(f"{prefix}.k")
        self.hook_v = HookPoint(f"{prefix}.v")
        self.hook_pattern = HookPoint(f"{prefix}.pattern")
        self.hook_z = HookPoint(f"{prefix}.z")
        self.hook_out = HookPoint(f"{prefix}.out")

    def forward(self, x: Tensor) -> Tensor:
        B, T, D = x.shape  # x: [B, T, D]
        qkv = self.c_attn(x).view(B, T, 3, self.n_head, self.d_head)  # [B, T, 3, H, Dh]
        q = self.hook_q(qkv[:, :, 0])  # [B, T, H, Dh]
        k = self.hook_k(qkv[:, :, 1])  # [B, T, H, Dh]
        v = self.hook_v(qkv[:, :, 2])  # [B, T, H, Dh]
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # each [B, H, T, Dh]
        if self.linear:
            # Linear self-attention: raw scores over the keys up to the query, divided by their number.
            causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()  # [Tq, Tk]
            n_keys = torch.arange(1, T + 1, device=x.device, dtype=q.dtype).unsqueeze(-1)  # [Tq, 1]
            pattern = self.hook_pattern((q @ k.transpose(-2, -1)).masked_fill(~causal, 0.0) / n_keys)  # [B, H, Tq, Tk]
            z = pattern @ v  # [B, H, T, Dh]
        elif self.hook_pattern.has_hooks:
            # Explicit path, only when someone hooks the pattern; softmax in float32 for the probes.
            scores = (q @ k.transpose(-2, -1)).float() / math.sqrt(self.d_head)  # [B, H, Tq, Tk]
            causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()  # [Tq, Tk]
            scores = scores.masked_fill(~causal, float("-inf"))  # [B, H, Tq, Tk]
            pattern = self.hook_pattern(scores.softmax(dim=-1))  # [B, H, Tq, Tk]
            z = pattern.to(v.dtype) @ v  # [B, H, T, Dh]
        else:
            z = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # [B, H, T, Dh]
        z = self.hook_z(z.transpose(1, 2))  # [B, T, H, Dh]
        return self.hook_out(self.c_proj(z.reshape(B, T, D)))  # [B, T, D]


class MLP(nn.Module):
    """Position-wise feed-forward layer of width 4 d_model with GELU (tanh approximation, GPT-2's gelu_new)."""

    def __init__(self, config: ModelConfig, layer: int) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.d_model, 4 * config.d_model, bias=config.bias)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * config.d_model, config.d_model, bias=config.bias)
        self.hook_out = HookPoint(f"blocks.{layer}.mlp.out")

    def forward(self, x: Tensor) -> Tensor:
        h = self.gelu(self.c_fc(x))  # [B, T, 4D]
        return self.hook_out(self.c_proj(h))  # [B, T, D]


def _layer_norm(config: ModelConfig) -> nn.Module:
    """A LayerNorm, or the identity in a model without them."""
    return nn.LayerNorm(config.d_model, eps=config.layer_norm_eps) if config.layer_norm else nn.Identity()


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln(x)), then x + mlp(ln(x)) when the model has MLPs."""

    def __init__(self, config: ModelConfig, layer: int) -> None:
        super().__init__()
        # Registration order is forward order, which is the order ``hook_names`` reports.
        self.hook_resid_pre = HookPoint(f"blocks.{layer}.resid_pre")
        self.ln_1 = _layer_norm(config)
        self.attn = Attention(config, layer)
        self.hook_resid_mid = HookPoint(f"blocks.{layer}.resid_mid")
        self.ln_2 = _layer_norm(config) if config.mlp else None
        self.mlp = MLP(config, layer) if config.mlp else None
        self.hook_resid_post = HookPoint(f"blocks.{layer}.resid_post")

    def forward(self, x: Tensor) -> Tensor:
        x = self.hook_resid_pre(x)  # [B, T, D]
        x = self.hook_resid_mid(x + self.attn(self.ln_1(x)))  # [B, T, D]
        if self.mlp is not None and self.ln_2 is not None:
            x = x + self.mlp(self.ln_2(x))  # [B, T, D]
        return self.hook_resid_post(x)  # [B, T, D]


class GPT(nn.Module):
    """GPT-2-style model: ``forward(tokens [B, T]) -> logits [B, T, V]``; a vector model (``d_vector`` set):
    ``forward(vectors [B, T, d_vector]) -> predictions [B, T]``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.vectors = config.d_vector is not None
        if config.d_vector is not None:
            self.w_in = nn.Linear(config.d_vector, config.d_model, bias=config.bias)  # input head
            self.w_out = nn.Linear(config.d_model, 1, bias=config.bias)  # output head: one number per position
        else:
            self.wte = nn.Embedding(config.vocab_size, config.d_model)  # also the unembedding (tied)
        self.wpe = nn.Embedding(config.context, config.d_model) if config.positions else None
        self.hook_embed = HookPoint("embed")
        self.blocks = nn.ModuleList(Block(config, i) for i in range(config.n_layer))
        self.ln_f = _layer_norm(config)
        self.hook_ln_final = HookPoint("ln_final.out")
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """GPT-2 init: N(0, init_std) weights, zero biases, residual projections scaled by 1/sqrt(2 n_layer)."""
        std = self.config.init_std
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, mean=0.0, std=std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=std)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        # Each block adds two outputs to the residual stream; scale them so its variance stays O(1).
        residual_std = std / math.sqrt(2 * self.config.n_layer)
        for module in self.modules():
            if isinstance(module, (Attention, MLP)):
                nn.init.normal_(module.c_proj.weight, mean=0.0, std=residual_std)

    def forward(self, tokens: Tensor) -> Tensor:
        want = 3 if self.vectors else 2
        if tokens.ndim != want:
            what = f"[batch, pos, {self.config.d_vector}] vectors" if self.vectors else "[batch, pos] token ids"
            raise RepeatlabError(f"the model takes {what}, got shape {tuple(tokens.shape)}")
        T = tokens.shape[1]  # tokens: [B, T] int64, or [B, T, d_vector] floats
        if T > self.config.context:
            raise RepeatlabError(f"sequence length {T} exceeds the model context {self.config.context}")
        x = self.w_in(tokens) if self.vectors else self.wte(tokens)  # [B, T, D]
        if self.wpe is not None:
            x = x + self.wpe(torch.arange(T, device=tokens.device))  # [B, T, D]
        x = self.hook_embed(x)  # [B, T, D]
        for block in self.blocks:
            x = block(x)  # [B, T, D]
        x = self.hook_ln_final(self.ln_f(x))  # [B, T, D]
        if self.vectors:
            return self.w_out(x).squeeze(-1)  # [B, T] predictions
        return F.linear(x, self.wte.weight)  # [B, T, V] (tied unembedding)

    def n_params(self, *, non_embedding: bool = False) -> int:
        """Exact parameter count; ``non_embedding`` leaves out the token and position embeddings (a vector
        model's input and output heads and its position embedding).

        Unlike ``ModelConfig.n_params_scaling_law`` (the 12 L D^2 scaling-law N), this counts biases
        and LayerNorm parameters. The tied unembedding is counted once, as the token embedding.
        """
        total = sum(p.numel() for p in self.parameters())
        if non_embedding:
            total -= sum(p.numel() for p in self.embedding_parameters())
        return total

    def embedding_parameters(self) -> list[nn.Parameter]:
        """The parameters of the embeddings: token (tied unembedding) and position embedding, or a vector model's
        input and output heads and position embedding."""
        modules: list[nn.Module] = [self.w_in, self.w_out] if self.vectors else [self.wte]
        if self.wpe is not None:
            modules.append(self.wpe)
        return [p for module in modules for p in module.parameters()]
