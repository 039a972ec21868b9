"""Head ablation: the causal check that heads with high induction scores actually do the copying.

Heads are ablated at ``blocks.{i}.attn.z`` (their outputs before ``c_proj``), so removing one head
leaves the others untouched. *Zero* ablation replaces a head's output with zeros; *mean* ablation with
its mean output over every position of the reference contexts (the test contexts of the ICL score),
which keeps the average contribution of the head and removes only its dependence on the input, so it
perturbs the residual stream less than zeros (the choice of Olsson et al. and most later work).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from repeatlab.errors import RepeatlabError
from repeatlab.models.gpt import GPT
from repeatlab.models.hooks import HookFn, hooks
from repeatlab.probes.heads import Head, check_heads, model_device
from repeatlab.probes.icl import CopyingResult, IclResult, copying_eval, icl_score

AblationMode = Literal["zero", "mean"]
ABLATION_MODES: tuple[AblationMode, ...] = ("zero", "mean")


@torch.no_grad()
def mean_head_outputs(model: GPT, rows: Tensor, layers: Sequence[int], *, batch_size: int = 16) -> dict[int, Tensor]:
    """Mean ``attn.z`` per head over all positions of ``model(rows[:, :-1])``: ``{layer: [H, Dh]}``."""
    if rows.ndim != 2 or rows.shape[0] == 0:
        raise RepeatlabError(f"mean ablation needs reference rows [n >= 1, T + 1], got shape {tuple(rows.shape)}")
    device = model_device(model)
    sums: dict[int, Tensor] = {}
    n_positions = 0

    def accumulate(z: Tensor, name: str) -> None:  # z: [B, T, H, Dh], read only
        layer = int(name.split(".")[1])
        total = z.double().sum(dim=(0, 1))  # [H, Dh]
        sums[layer] = sums[layer] + total if layer in sums else total

    with hooks(model, {f"blocks.{layer}.attn.z": accumulate for layer in sorted(set(layers))}):
        for batch in rows.split(batch_size):
            tokens = batch[:, :-1].to(device=device, dtype=torch.int64)  # [B, T]
            n_positions += tokens.numel()
            model(tokens)
    return {layer: (total / n_positions).float() for layer, total in sums.items()}


def ablation_hooks(
    heads: Sequence[Head], *, mode: AblationMode, means: Mapping[int, Tensor] | None = None
) -> dict[str, HookFn]:
    """Hook functions (name -> fn) that ablate ``heads``; ``means`` (from ``mean_head_outputs``) for mode ``mean``."""
    if mode not in ABLATION_MODES:
        raise RepeatlabError(f"ablation mode must be one of {list(ABLATION_MODES)}, got {mode!r}")
    by_layer: dict[int, list[int]] = {}
    for layer, head in heads:
        by_layer.setdefault(layer, []).append(head)
    if mode == "mean" and (means is None or any(layer not in means for layer in by_layer)):
        raise RepeatlabError("mean ablation needs the mean head outputs of every ablated layer (mean_head_outputs)")
    if mode == "zero":
        means = None

    def make(layer: int, layer_heads: list[int]) -> HookFn:
        def hook(z: Tensor, _name: str) -> Tensor:  # z: [B, T, H, Dh]; returns a new tensor
            drop = torch.zeros(z.shape[2], 1, dtype=z.dtype, device=z.device)  # [H, 1]
            drop[layer_heads] = 1
            kept = z * (1 - drop)  # [B, T, H, Dh]
            if means is None:  # zero ablation
                return kept
            return kept + means[layer].to(z) * drop  # [B, T, H, Dh]

        return hook

    return {f"blocks.{layer}.attn.z": make(layer, layer_heads) for layer, layer_heads in by_layer.items()}


@contextmanager
def ablated(
    model: GPT, heads: Sequence[Head], *, mode: AblationMode = "zero", means: Mapping[int, Tensor] | None = None
) -> Iterator[None]:
    """Run the block with ``heads`` ablated; the hooks are always removed afterwards."""
    check_heads(model, heads)
    with hooks(model, ablation_hooks(heads, mode=mode, means=means)):
        yield


METRICS = ("icl_score", "repeated_copies_loss", "test_loss")


@dataclass(frozen=True)
class AblationResult:
    """ICL score, copying loss and test loss with and without the ablated heads."""

    heads: list[Head]
    mode: AblationMode
    baseline: dict[str, float]
    ablated: dict[str, float]

    @property
    def delta(self) -> dict[str, float]:
        """Ablated minus baseline; a rise in copying loss and ICL score means the heads mattered."""
        return {name: self.ablated[name] - self.baseline[name] for name in self.baseline}

    def to_dict(self) -> dict[str, Any]:
        return {
            "heads": [list(h) for h in self.heads],
            "mode": self.mode,
            "baseline": self.baseline,
            "ablated": self.ablated,
            "delta": self.delta,
        }


def ablation_metrics(icl: IclResult, copying: CopyingResult) -> dict[str, float]:
    """The metrics head ablation compares, from an ICL and a copying result."""
    return {"icl_score": icl.score, "repeated_copies_loss": copying.repeated_copies_loss, "test_loss": icl.test_loss}


def head_ablation(
    model: GPT,
    heads: Sequence[Head],
    *,
    mode: AblationMode,
    test_rows: Tensor,
    paragraphs: Tensor,
    start_token: int,
    n_copies: int = 11,
    positions: tuple[int, int] | None = None,
    batch_size: int = 16,
    baseline: dict[str, float] | None = None,
) -> AblationResult:
    """Measure ICL score, repeated-copies loss and test loss before and after ablating ``heads``.

    ``baseline`` (from ``ablation_metrics`` on the same rows and paragraphs) skips re-measuring the
    intact model.
    """
    heads = [(int(layer), int(head)) for layer, head in heads]
    if not heads:
        raise RepeatlabError("head ablation needs at least one head")
    check_heads(model, heads)

    def measure() -> dict[str, float]:
        icl = icl_score(model, test_rows, positions=positions, batch_size=batch_size)
        copying = copying_eval(model, paragraphs, n_copies=n_copies, start_token=start_token, batch_size=batch_size)
        return ablation_metrics(icl, copying)

    baseline = dict(baseline) if baseline is not None else measure()
    means = None
    if mode == "mean":
        means = mean_head_outputs(model, test_rows, [layer for layer, _ in heads], batch_size=batch_size)
    with ablated(model, heads, mode=mode, means=means):
        after = measure()
    return AblationResult(heads=heads, mode=mode, baseline=baseline, ablated=after)


__all__ = [
    "ABLATION_MODES",
    "AblationMode",
    "AblationResult",
    "ablated",
    "ablation_hooks",
    "ablation_metrics",
    "head_ablation",
    "mean_head_outputs",
]
