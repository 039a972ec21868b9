"""A decoder-only GPT-2-style transformer with named hook points, readable top to bottom.

The architecture matches Hugging Face ``GPT2LMHeadModel`` exactly (so ``models/export.py`` is a pure
weight copy): token + learned absolute position embeddings, pre-LayerNorm blocks, fused qkv attention
with biases, a 4x GELU(tanh) MLP, a final LayerNorm and an unembedding tied to the token embedding.
``mlp=False`` drops the MLP sublayers, giving the attention-only models of Olsson et al. (2022).

Shape letters: B batch, T positions (Tq/Tk query/key), D d_model, H heads, Dh d_head, V vocab.
Hook points (see ``models/hooks.py``) are identities unless a hook is attached; the attention pattern
is only materialised when a hook on ``blocks.{i}.attn.pattern`` asks for it, otherwise attention runs
through ``scaled_dot_product_attention`` (flash attention on GPU).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from repeatlab.errors import RepeatlabError
from repeatlab.models.hooks import HookPoint


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
    """Number of token ids (rows of the tied embedding/unembedding)."""
    context: int
    """Maximum sequence length (rows of the position embedding)."""
    mlp: bool = True
    """Whether blocks have an MLP sublayer; ``False`` gives an attention-only model."""
    layer_norm_eps: float = 1e-5
    """Epsilon of every LayerNorm (GPT-2 uses 1e-5)."""
    init_std: float = 0.02
    """Std of the normal init of weights; residual output projections use ``init_std / sqrt(2 n_layer)``."""

    def __post_init__(self) -> None:
        for name in ("n_layer", "d_model", "n_head", "vocab_size", "context"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise RepeatlabError(f"ModelConfig.{name} must be a positive integer, got {value!r}")
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
        self.n_head, self.d_head = config.n_head, config.d_head
        self.c_attn = nn.Linear(config.d_model, 3 * config.d_model)  # fused q, k, v
        self.c_proj = nn.Linear(config.d_model, config.d_model)
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
        if self.hook_pattern.has_hooks:
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
        self.c_fc = nn.Linear(config.d_model, 4 * config.d_model)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * config.d_model, config.d_model)
        self.hook_out = HookPoint(f"blocks.{layer}.mlp.out")

    def forward(self, x: Tensor) -> Tensor:
        h = self.gelu(self.c_fc(x))  # [B, T, 4D]
        return self.hook_out(self.c_proj(h))  # [B, T, D]


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln(x)), then x + mlp(ln(x)) when the model has MLPs."""

    def __init__(self, config: ModelConfig, layer: int) -> None:
        super().__init__()
        # Registration order is forward order, which is the order ``hook_names`` reports.
        self.hook_resid_pre = HookPoint(f"blocks.{layer}.resid_pre")
        self.ln_1 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.attn = Attention(config, layer)
        self.hook_resid_mid = HookPoint(f"blocks.{layer}.resid_mid")
        self.ln_2 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps) if config.mlp else None
        self.mlp = MLP(config, layer) if config.mlp else None
        self.hook_resid_post = HookPoint(f"blocks.{layer}.resid_post")

    def forward(self, x: Tensor) -> Tensor:
        x = self.hook_resid_pre(x)  # [B, T, D]
        x = self.hook_resid_mid(x + self.attn(self.ln_1(x)))  # [B, T, D]
        if self.mlp is not None and self.ln_2 is not None:
            x = x + self.mlp(self.ln_2(x))  # [B, T, D]
        return self.hook_resid_post(x)  # [B, T, D]


class GPT(nn.Module):
    """GPT-2-style language model: ``forward(tokens [B, T]) -> logits [B, T, V]``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.d_model)  # also the unembedding (tied)
        self.wpe = nn.Embedding(config.context, config.d_model)
        self.hook_embed = HookPoint("embed")
        self.blocks = nn.ModuleList(Block(config, i) for i in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.hook_ln_final = HookPoint("ln_final.out")
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """GPT-2 init: N(0, init_std) weights, zero biases, residual projections scaled by 1/sqrt(2 n_layer)."""
        std = self.config.init_std
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, mean=0.0, std=std)
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
        if tokens.ndim != 2:
            raise RepeatlabError(f"tokens must be [batch, pos], got shape {tuple(tokens.shape)}")
        B, T = tokens.shape  # tokens: [B, T] int64
        if T > self.config.context:
            raise RepeatlabError(f"sequence length {T} exceeds the model context {self.config.context}")
        pos = torch.arange(T, device=tokens.device)  # [T]
        x = self.hook_embed(self.wte(tokens) + self.wpe(pos))  # [B, T, D]
        for block in self.blocks:
            x = block(x)  # [B, T, D]
        x = self.hook_ln_final(self.ln_f(x))  # [B, T, D]
        return F.linear(x, self.wte.weight)  # [B, T, V] (tied unembedding)

    def n_params(self, *, non_embedding: bool = False) -> int:
        """Exact parameter count; ``non_embedding`` leaves out the token and position embeddings.

        Unlike ``ModelConfig.n_params_scaling_law`` (the 12 L D^2 scaling-law N), this counts biases
        and LayerNorm parameters. The tied unembedding is counted once, as the token embedding.
        """
        total = sum(p.numel() for p in self.parameters())
        if non_embedding:
            total -= self.wte.weight.numel() + self.wpe.weight.numel()
        return total
