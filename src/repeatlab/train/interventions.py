"""Training-time interventions: zero, mean-ablate or clamp activations (or single heads) at named hook points.

Singh et al. (2024) clamp parts of a network throughout training to find which sub-circuits an induction head
needs in order to form (mode ``reference`` clamps an activation to what a trained run's model computes for the
same input); the same hooks test whether repeated data's damage runs through given heads. An intervention is
plain data (``InterventionConfig``: hook, heads, mode, step range, reference run), so whether it applies is a
pure function of the step and a resumed run applies exactly the same ones.

Per-head hook points carry a head axis: ``blocks.{i}.attn.{q,k,v,z}`` are ``[B, T, H, Dh]`` and
``blocks.{i}.attn.pattern`` is ``[B, H, Tq, Tk]``; every other hook point is ``[B, T, D]`` and is
replaced as a whole. Replacements are new tensors (never in-place edits) and the ``mean`` of mode
``mean`` is detached, so no gradient flows through a replaced value.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn

from repeatlab.errors import RepeatlabError
from repeatlab.models.gpt import GPT
from repeatlab.models.hooks import HookFn, hook_names, hooks, run_with_cache
from repeatlab.train.config import InterventionConfig

_PER_HEAD = re.compile(r"blocks\.(\d+)\.attn\.(q|k|v|z|pattern)")


def head_axis(hook: str) -> int | None:
    """The head axis of a hook point's activation, or ``None`` when it has none."""
    match = _PER_HEAD.fullmatch(hook)
    if match is None:
        return None
    return 1 if match.group(2) == "pattern" else 2


def _mean_dims(hook: str) -> tuple[int, ...]:
    # Attention patterns are [B, H, Tq, Tk]: averaging over query positions would mix causal rows.
    return (0,) if hook.endswith(".attn.pattern") else (0, 1)


def check_interventions(model: GPT, interventions: Sequence[InterventionConfig]) -> None:
    """Raise ``ValueError`` naming the first intervention whose hook or heads the model does not have."""
    names = set(hook_names(model))
    for i, item in enumerate(interventions):
        where = f"train.interventions[{i}]"
        if item.hook not in names:
            raise RepeatlabError(f"{where}: the model has no hook point {item.hook!r}; per-layer names run from "
                             f"blocks.0 to blocks.{model.config.n_layer - 1} (see repeatlab.models.hook_names)")
        if item.heads and head_axis(item.hook) is None:
            raise RepeatlabError(f"{where}: {item.hook!r} has no head axis, so heads must be empty; per-head hook "
                             f"points are blocks.{{i}}.attn.q/k/v/z/pattern")
        bad = [h for h in item.heads if h >= model.config.n_head]
        if bad:
            raise RepeatlabError(f"{where}: head {bad[0]} does not exist; the model has heads 0..{model.config.n_head - 1}")


def replace_activation(x: Tensor, item: InterventionConfig, reference: Tensor | None = None) -> Tensor:
    """``x`` with the intervention's heads (or all of it) replaced by zeros, the batch mean, a constant or, in mode
    ``reference``, ``reference`` (the reference model's activation at the same hook point for the same input)."""
    if item.mode == "zero":
        new = torch.zeros_like(x)
    elif item.mode == "clamp":
        new = torch.full_like(x, item.value)
    elif item.mode == "reference":
        if reference is None or reference.shape != x.shape:
            raise RepeatlabError(f"mode reference at {item.hook!r} needs the reference model's activation of shape "
                             f"{tuple(x.shape)}, got {None if reference is None else tuple(reference.shape)}")
        new = reference.to(x.dtype)
    else:
        new = x.detach().mean(dim=_mean_dims(item.hook), keepdim=True).expand_as(x)
    if not item.heads:
        return new
    axis = head_axis(item.hook)
    if axis is None:  # excluded by check_interventions
        raise RepeatlabError(f"{item.hook!r} has no head axis")
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    mask = torch.zeros(x.shape[axis], dtype=torch.bool, device=x.device)  # [H]
    mask[list(item.heads)] = True
    return torch.where(mask.view(shape), new, x)


def _hook(items: list[InterventionConfig], captured: Mapping[str, dict[str, Tensor]]) -> HookFn:
    def hook(x: Tensor, name: str) -> Tensor:
        for item in items:  # several interventions on one hook point apply in config order
            reference = captured[item.reference][name] if item.reference is not None else None
            x = replace_activation(x, item, reference)
        return x

    return hook


@contextlib.contextmanager
def _capturing_references(
    model: GPT, needed: Mapping[str, set[str]], references: Mapping[str, GPT]
) -> Iterator[dict[str, dict[str, Tensor]]]:
    """Before each forward pass of ``model``, run every reference model on the same tokens and keep the activations
    that mode ``reference`` needs (reference run -> hook name -> activation), without gradients."""
    captured: dict[str, dict[str, Tensor]] = {}
    missing = sorted(set(needed) - set(references))
    if missing:
        raise RepeatlabError(f"an intervention of mode reference names {missing[0]}, but no reference model was loaded "
                         f"for it; train through repeatlab.train.train, which loads every reference run")

    def capture(_module: nn.Module, args: tuple[Tensor, ...]) -> None:
        with torch.no_grad():
            for path, names in needed.items():
                captured[path] = run_with_cache(references[path], args[0], names)[1]

    handle = model.register_forward_pre_hook(capture) if needed else None
    try:
        yield captured
    finally:
        if handle is not None:
            handle.remove()
        captured.clear()


@contextlib.contextmanager
def intervened(
    model: GPT,
    interventions: Sequence[InterventionConfig],
    step: int,
    *,
    evaluating: bool = False,
    references: Mapping[str, GPT] | None = None,
) -> Iterator[None]:
    """Run the block with the interventions active at ``step`` hooked into ``model``; always removed after.
    ``references``: the model of each run that an intervention of mode ``reference`` names, by run directory."""
    by_hook: dict[str, list[InterventionConfig]] = {}
    needed: dict[str, set[str]] = {}
    for item in interventions:
        if item.active(step, evaluating=evaluating):
            by_hook.setdefault(item.hook, []).append(item)
            if item.reference is not None:
                needed.setdefault(item.reference, set()).add(item.hook)
    if not by_hook:
        yield
        return
    with _capturing_references(model, needed, references or {}) as captured:
        with hooks(model, {name: _hook(items, captured) for name, items in by_hook.items()}):
            yield


__all__ = ["check_interventions", "head_axis", "intervened", "replace_activation"]
