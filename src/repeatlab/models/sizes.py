"""Named model sizes: the Hernandez et al. (2022) family, GPT-2 small, attention-only models and tiny CPU sizes.

The registry stores every number explicitly; nothing is ever parsed out of a size name.

* ``hern-{L}l``: Hernandez et al. (2022) family, ``d_model = 128 L``, 64-dim heads, so the scaling-law
  parameter count ``N = 12 L d_model^2`` runs from 1.57M (``hern-2l``) to 805M (``hern-16l``).
* ``gpt2-small``: the GPT-2 small shape (12 layers, d_model 768, 12 heads).
* ``attn-only-{1,2,3}l``: attention-only models (no MLPs) as in the mechanistic section of
  Hernandez et al. / Olsson et al. (2022), d_model 256 with four 64-dim heads.
* ``attn-only-min-2l``: Reddy (2023)'s minimal in-context classification network, two attention layers of one
  head each (``experiments/classification_phase.py``).
* ``tiny-*``: CPU sizes for tests and quick experiments (``tiny-4l`` has N = 0.79M).
* ``cpu-2l-{24,32,48,64}``: a two-layer family (two heads, so induction is possible) of 13.8K-98.3K
  non-embedding parameters, small enough for byte-level runs on a CPU to see 30-200 tokens per parameter.
* ``lsa-{1,2,3}l``: von Oswald et al. (2022)'s linear self-attention layers, single and stacked, for in-context
  regression (``repeatlab.data.regression``): one head of width 16 per layer (room for the 11-wide pairs of
  their 10-dimensional task), no softmax, MLP, LayerNorm, position embedding or biases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from repeatlab.errors import RepeatlabError
from repeatlab.models.gpt import GPT, AttentionKind, ModelConfig


@dataclass(kw_only=True, frozen=True)
class SizeSpec:
    """The shape of a named size; vocabulary and context come from the data, not the size."""

    n_layer: int
    """Number of transformer blocks."""
    d_model: int
    """Width of the residual stream."""
    n_head: int
    """Attention heads per layer (d_model must be divisible by it)."""
    mlp: bool = True
    """Whether blocks have MLP sublayers; ``False`` for attention-only models."""
    attention: AttentionKind = "softmax"
    """``ModelConfig.attention``: ``linear`` for linear self-attention."""
    layer_norm: bool = True
    """``ModelConfig.layer_norm``."""
    positions: bool = True
    """``ModelConfig.positions``."""
    bias: bool = True
    """``ModelConfig.bias``."""
    init_std: float = 0.02
    """``ModelConfig.init_std``."""

    def __post_init__(self) -> None:
        # Validates the shape with a placeholder vocabulary/context; raises RepeatlabError naming the field.
        self.config(vocab_size=1, context=1)

    def config(self, *, vocab_size: int, context: int, d_vector: int | None = None) -> ModelConfig:
        """The ``ModelConfig`` of this shape for the data's vocabulary (0 for vectors), context and vector width."""
        return ModelConfig(n_layer=self.n_layer, d_model=self.d_model, n_head=self.n_head, vocab_size=vocab_size,
                           context=context, mlp=self.mlp, attention=self.attention, layer_norm=self.layer_norm,
                           positions=self.positions, bias=self.bias, init_std=self.init_std, d_vector=d_vector)


def _hernandez(n_layer: int) -> SizeSpec:
    return SizeSpec(n_layer=n_layer, d_model=128 * n_layer, n_head=2 * n_layer)


def _linear_self_attention(n_layer: int) -> SizeSpec:
    return SizeSpec(n_layer=n_layer, d_model=16, n_head=1, mlp=False, attention="linear", layer_norm=False,
                    positions=False, bias=False, init_std=LSA_INIT_STD)


LSA_INIT_STD = 0.25
"""Init std of the linear self-attention sizes: a prediction is a product of five matrices, so GPT-2's 0.02 would
start it at ~1e-8 and its gradients vanish; 0.25 (~1/sqrt(16)) starts every matrix near unit gain."""

SIZES: dict[str, SizeSpec] = {
    # Tiny CPU sizes (train at ~10K tokens/s/core).
    "tiny-1l": SizeSpec(n_layer=1, d_model=64, n_head=2),
    "tiny-2l": SizeSpec(n_layer=2, d_model=64, n_head=2),
    "tiny-4l": SizeSpec(n_layer=4, d_model=128, n_head=2),
    # Two-layer CPU family of the cpu-repro preset (N = 13.8K, 24.6K, 55.3K, 98.3K).
    "cpu-2l-24": SizeSpec(n_layer=2, d_model=24, n_head=2),
    "cpu-2l-32": SizeSpec(n_layer=2, d_model=32, n_head=2),
    "cpu-2l-48": SizeSpec(n_layer=2, d_model=48, n_head=2),
    "cpu-2l-64": SizeSpec(n_layer=2, d_model=64, n_head=2),
    # Tiny attention-only sizes for CPU tests of induction heads.
    "attn-only-tiny-1l": SizeSpec(n_layer=1, d_model=64, n_head=4, mlp=False),
    "attn-only-tiny-2l": SizeSpec(n_layer=2, d_model=64, n_head=4, mlp=False),
    "attn-only-tiny-3l": SizeSpec(n_layer=3, d_model=64, n_head=4, mlp=False),
    # Reddy (2023)'s minimal network: two single-head attention layers, so one induction circuit at most.
    "attn-only-min-2l": SizeSpec(n_layer=2, d_model=64, n_head=1, mlp=False),
    # Attention-only models of the mechanistic experiments.
    "attn-only-1l": SizeSpec(n_layer=1, d_model=256, n_head=4, mlp=False),
    "attn-only-2l": SizeSpec(n_layer=2, d_model=256, n_head=4, mlp=False),
    "attn-only-3l": SizeSpec(n_layer=3, d_model=256, n_head=4, mlp=False),
    # Hernandez et al. (2022) family: 1.57M, 5.31M, 12.6M, 24.6M, 42.5M, 101M, 197M, 340M, 540M, 805M.
    "hern-2l": _hernandez(2),
    "hern-3l": _hernandez(3),
    "hern-4l": _hernandez(4),
    "hern-5l": _hernandez(5),
    "hern-6l": _hernandez(6),
    "hern-8l": _hernandez(8),
    "hern-10l": _hernandez(10),
    "hern-12l": _hernandez(12),
    "hern-14l": _hernandez(14),
    "hern-16l": _hernandez(16),
    "gpt2-small": SizeSpec(n_layer=12, d_model=768, n_head=12),
    # von Oswald et al. (2022)'s linear self-attention, one layer and stacked.
    "lsa-1l": _linear_self_attention(1),
    "lsa-2l": _linear_self_attention(2),
    "lsa-3l": _linear_self_attention(3),
}


def model_config(size: str, *, vocab_size: int, context: int, d_vector: int | None = None) -> ModelConfig:
    """The ``ModelConfig`` of a named size for a given vocabulary and context length (and, for vector data such as
    in-context regression, vector width, with ``vocab_size = 0``)."""
    spec = SIZES.get(size)
    if spec is None:
        raise RepeatlabError(f"unknown model size {size!r}; valid sizes are: {', '.join(SIZES)}")
    return spec.config(vocab_size=vocab_size, context=context, d_vector=d_vector)


def count_params(config: ModelConfig, *, non_embedding: bool = False) -> int:
    """Exact parameter count of ``GPT(config)``, computed on the meta device (no memory, no init cost)."""
    with torch.device("meta"):
        model = GPT(config)
    return model.n_params(non_embedding=non_embedding)


def list_sizes(vocab_size: int = 50257, context: int = 1024) -> list[dict[str, Any]]:
    """One row per size: shape, the scaling-law N (``n_params_scaling_law``) and the exact total."""
    rows = []
    for name in SIZES:
        config = model_config(name, vocab_size=vocab_size, context=context)
        rows.append(
            {
                "name": name,
                "n_layer": config.n_layer,
                "d_model": config.d_model,
                "n_head": config.n_head,
                "d_head": config.d_head,
                "mlp": config.mlp,
                "n_params_scaling_law": config.n_params_scaling_law,
                "n_params": count_params(config),
            }
        )
    return rows
