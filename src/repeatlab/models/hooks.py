"""Named activation hooks: identity ``HookPoint`` modules plus a context manager that adds and removes hooks.

Every capture point in the model is a ``HookPoint`` constructed with its public name
(``"blocks.0.attn.pattern"``). Names are assigned explicitly in ``models/gpt.py`` rather than derived
from module paths, so they stay the same when the model is wrapped (``torch.compile``, DDP).

A hook function receives ``(activation, name)`` and returns ``None`` to leave the activation alone or a
tensor to replace it. Hooks run inside autograd, so a replacing hook may be used during training
(clamping a head). Return a new tensor rather than writing into the one you are given: some activations
are saved by autograd for the backward pass, and in-place edits on them raise at ``backward()``.

With ``torch.compile``: dynamo does not, by default, notice hooks added to submodules after a model was
compiled (``torch._dynamo.config.skip_nnmodule_hook_guards``). Enter ``hooks(...)`` before the first
compiled call (e.g. clamping for a whole training run), or probe an uncompiled model.

Example (zero-ablate head 3 of layer 1)::

    def ablate(z: Tensor, name: str) -> Tensor:  # z: [batch, pos, head, d_head]
        mask = torch.ones(z.shape[2], device=z.device, dtype=z.dtype)
        mask[3] = 0
        return z * mask[:, None]

    with hooks(model, {"blocks.1.attn.z": ablate}):
        logits = model(tokens)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from torch import Tensor, nn

from repeatlab.errors import RepeatlabError

HookFn = Callable[[Tensor, str], Tensor | None]


class HookPoint(nn.Module):
    """An identity module marking a named activation; costs one dict check per call when no hook is attached.

    ``nn.Module.__call__`` already skips straight to ``forward`` when no hooks are registered, so an unused
    hook point is an identity function call. ``has_hooks`` lets the model skip work that only exists to
    feed a hook (materialising the attention pattern).
    """

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    @property
    def has_hooks(self) -> bool:
        """Whether any forward (pre-)hook is attached, i.e. whether someone will look at this activation."""
        return bool(self._forward_hooks or self._forward_pre_hooks)

    def forward(self, x: Tensor) -> Tensor:
        return x

    def extra_repr(self) -> str:
        return repr(self.name)


def hook_points(model: nn.Module) -> dict[str, HookPoint]:
    """Map each hook name to its ``HookPoint``, in forward order."""
    points: dict[str, HookPoint] = {}
    for module in model.modules():
        if isinstance(module, HookPoint):
            if module.name in points and points[module.name] is not module:
                raise RepeatlabError(f"two hook points share the name {module.name!r}; hook one model at a time")
            points[module.name] = module
    return points


def hook_names(model: nn.Module) -> list[str]:
    """All hook names of ``model`` in forward order (``embed``, ``blocks.0.resid_pre``, …, ``ln_final.out``)."""
    return list(hook_points(model))


def describe_hook_names(names: Iterable[str]) -> str:
    """A compact summary of hook names: per-block names collapse to ``blocks.{0..N-1}.attn.z``."""
    names = list(names)
    layers: dict[str, list[int]] = {}
    order: list[str] = []
    for name in names:
        match = re.fullmatch(r"blocks\.(\d+)\.(.+)", name)
        key = f"blocks.{{i}}.{match.group(2)}" if match else name
        if key not in layers:
            layers[key] = []
            order.append(key)
        if match:
            layers[key].append(int(match.group(1)))
    parts = []
    for key in order:
        idx = sorted(layers[key])
        if idx:
            span = f"{idx[0]}" if len(idx) == 1 else f"{idx[0]}..{idx[-1]}"
            key = key.replace("{i}", "{" + span + "}") if idx == list(range(idx[0], idx[-1] + 1)) else key
        parts.append(key)
    return ", ".join(parts)


@contextmanager
def hooks(model: nn.Module, fwd_hooks: Mapping[str, HookFn]) -> Iterator[None]:
    """Attach ``fwd_hooks`` (hook name -> function) for the duration of the block; always removes them.

    Unknown names raise ``ValueError`` before anything is attached. Gradients flow through replaced
    activations; wrap the call in ``torch.no_grad()`` yourself when you do not need them.
    """
    points = hook_points(model)
    unknown = [name for name in fwd_hooks if name not in points]
    if unknown:
        raise RepeatlabError(
            f"unknown hook name {unknown[0]!r}; valid names are: {describe_hook_names(points)}"
        )
    handles = []
    try:
        for name, fn in fwd_hooks.items():
            handles.append(points[name].register_forward_hook(_adapt(fn, name)))
        yield
    finally:
        for handle in handles:
            handle.remove()


def _adapt(fn: HookFn, name: str) -> Callable[[nn.Module, Any, Tensor], Tensor | None]:
    def hook(module: nn.Module, inputs: Any, output: Tensor) -> Tensor | None:
        return fn(output, name)

    return hook


def run_with_cache(
    model: nn.Module, tokens: Tensor, names: Iterable[str]
) -> tuple[Tensor, dict[str, Tensor]]:
    """Run ``model(tokens)`` and return ``(logits, cache)`` where ``cache[name]`` is a detached copy.

    The copies are independent of the forward pass, so later hooks (or the caller) mutating an activation
    never change the cache, and vice versa. Pass ``hook_names(model)`` to capture everything.
    """
    cache: dict[str, Tensor] = {}

    def save(act: Tensor, name: str) -> None:
        cache[name] = act.detach().clone()

    with hooks(model, {name: save for name in dict.fromkeys(names)}):
        logits = model(tokens)
    return logits, cache


__all__ = ["HookFn", "HookPoint", "describe_hook_names", "hook_names", "hook_points", "hooks", "run_with_cache"]
