"""Atomic, resumable checkpoints: every stateful piece of a run stored by name in one directory per step.

Layout of ``checkpoints/step_0000120/``::

    model.safetensors   weights (``ModelState``: ``models.weights.save_model``, config + checksum in the header)
    optimizer.pt        ``{name}.pt`` for every other state: optimizer, loader, progress, rng, ...
    meta.json           step and the names stored

Every stored thing is a ``Stateful`` (torchtitan's pattern); the model is one through ``ModelState``, which also
chooses its file (a ``StateFile``), so the checkpointer never asks what kind of object it holds.

A checkpoint is built under a temporary name and renamed into place (``io.atomic_directory``), so a
process killed at any moment leaves either a complete checkpoint or none; the last K are kept. ``.pt``
files hold only tensors and plain Python data and are read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import io
import pickle
import random
import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from repeatlab.errors import RepeatlabError
from repeatlab.io import atomic_directory, atomic_write_bytes, read_json, write_json
from repeatlab.models.gpt import GPT
from repeatlab.models.weights import load_model, save_model

_STEP_DIR = re.compile(r"step_(\d{7,})")


class Stateful(Protocol):
    """Anything that must survive a restart."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@runtime_checkable
class StateFile(Stateful, Protocol):
    """A ``Stateful`` that writes and reads its own checkpoint file, ``{name}{suffix}``; any other state is stored
    as ``{name}.pt`` by ``torch.save``."""

    suffix: str

    def save(self, path: Path) -> None: ...

    def load(self, path: Path, *, device: torch.device) -> None: ...


class ModelState:
    """The model as a ``Stateful`` (torchtitan's ``ModelWrapper``), stored in the format of the final weights:
    safetensors with the config and a checksum in the header, so a checkpoint's model loads like any weights file
    (``load_run(checkpoint=...)``, ``--init-checkpoint``) and a checkpoint of another shape is refused by name."""

    suffix = ".safetensors"

    def __init__(self, model: GPT) -> None:
        self.model = model

    def state_dict(self) -> dict[str, Any]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state)

    def save(self, path: Path) -> None:
        save_model(self.model, path)

    def load(self, path: Path, *, device: torch.device) -> None:
        self.load_state_dict(load_model(path, expected=self.model.config, device=device).state_dict())


class _TorchFile:
    """Any other ``Stateful`` as ``{name}.pt``: its state dict by ``torch.save``, read back with
    ``weights_only=True`` (tensors and plain data only, so a planted file cannot run code)."""

    suffix = ".pt"

    def __init__(self, state: Stateful) -> None:
        self.state = state

    def save(self, path: Path) -> None:
        buffer = io.BytesIO()
        torch.save(self.state.state_dict(), buffer)
        atomic_write_bytes(path, buffer.getvalue())

    def load(self, path: Path, *, device: torch.device) -> None:
        try:
            # CPU first: RNG states must stay on the CPU; the optimizer moves its state to its parameters.
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
            # Not torch's own text: it spans lines and advises weights_only=False, which runs any code a damaged
            # or planted file holds.
            raise RepeatlabError(f"checkpoint file {path} is unreadable ({type(exc).__name__}: truncated, corrupt, "
                                 f"or not a state saved by repeatlab)") from None
        self.state.load_state_dict(state)


def _file_of(state: Stateful) -> StateFile | _TorchFile:
    return state if isinstance(state, StateFile) else _TorchFile(state)


class RNGState:
    """The Python, NumPy and torch (CPU and every CUDA device) random generators, as one stateful."""

    def state_dict(self) -> dict[str, Any]:
        version, mt, gauss = random.getstate()
        name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
        state: dict[str, Any] = {
            "python": [version, list(mt), gauss],
            "numpy": [name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), pos, has_gauss, cached],
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        version, mt, gauss = state["python"]
        random.setstate((version, tuple(mt), gauss))
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


def step_dir_name(step: int) -> str:
    return f"step_{step:07d}"


class Checkpointer:
    """Saves every ``every`` steps and at ``final_step``; keeps the last ``keep``; finds and restores the latest.

    Only the writing process (rank 0) passes ``write=True``; every process can restore. States are stored by
    name, each in the file its ``StateFile`` chooses or as ``{name}.pt``: pass the model as ``ModelState(model)``.
    """

    def __init__(self, directory: Path, *, every: int, keep: int, final_step: int, write: bool = True) -> None:
        self.directory, self.every, self.keep = Path(directory), every, keep
        self.final_step, self.write = final_step, write
        if write:
            self._remove_leftovers()

    def steps(self) -> list[int]:
        """Steps of the complete checkpoints, oldest first."""
        if not self.directory.is_dir():
            return []
        found = (_STEP_DIR.fullmatch(p.name) for p in self.directory.iterdir() if p.is_dir())
        return sorted(int(m.group(1)) for m in found if m)

    def latest(self) -> int | None:
        steps = self.steps()
        return steps[-1] if steps else None

    def path(self, step: int) -> Path:
        return self.directory / step_dir_name(step)

    def maybe_save(self, step: int, states: Callable[[], Mapping[str, Stateful]]) -> bool:
        """Save ``states()`` if ``step`` is on the schedule (a multiple of ``every``, or the final step).

        ``states`` is called only when saving, so preparing them (syncing counters) costs nothing otherwise.
        """
        if step % self.every == 0 or step == self.final_step:
            self.save(step, states())
            return True
        return False

    def save(self, step: int, states: Mapping[str, Stateful]) -> Path:
        """Write all ``states`` by name as one atomic directory, then drop checkpoints beyond the last K."""
        target = self.path(step)
        if not self.write:
            return target
        with atomic_directory(target, overwrite=True) as tmp:
            for name, obj in states.items():
                file = _file_of(obj)
                file.save(tmp / f"{name}{file.suffix}")
            write_json(tmp / "meta.json", {"step": step, "states": sorted(states)})
        for old in self.steps()[: -self.keep]:
            self._remove(self.path(old))
        return target

    def load(self, step: int, states: Mapping[str, Stateful], *, device: torch.device) -> None:
        """Restore every state from the checkpoint of ``step``, with a clear error if one is missing or corrupt."""
        path = self.path(step)
        try:
            meta = read_json(path / "meta.json")
        except (FileNotFoundError, ValueError) as exc:
            raise RepeatlabError(
                f"checkpoint {path} is incomplete or corrupt ({exc}); delete it to resume from an older one"
            ) from None
        missing = sorted(set(states) - set(meta.get("states", [])))
        if missing:
            raise RepeatlabError(
                f"checkpoint {path} lacks the state(s) {missing}; it was written by another trainer version"
            )
        for name, obj in states.items():
            file = _file_of(obj)
            file.load(path / f"{name}{file.suffix}", device=device)

    def load_latest(self, states: Mapping[str, Stateful], *, device: torch.device) -> tuple[int | None, list[str]]:
        """Restore the newest checkpoint that loads; returns its step (``None`` when there is none) and why each
        newer one was skipped.

        A damaged checkpoint (a disk error, a hand edit) costs the steps since the one before it, never the run;
        the trainer overwrites it when it saves that step again. When none loads, the run is refused rather than
        started over, since the states may hold parts of a damaged one.
        """
        skipped = []
        for step in reversed(self.steps()):
            try:
                self.load(step, states, device=device)
            except ValueError as exc:  # CheckpointError is a ValueError
                skipped.append(str(exc).splitlines()[0])
                continue
            return step, skipped
        if skipped:
            raise RepeatlabError(f"no checkpoint in {self.directory} loads ({'; '.join(skipped)}); delete "
                             f"{self.directory} to train the run again from step 0")
        return None, skipped

    def _remove(self, path: Path) -> None:
        # Rename first, so a kill during the (non-atomic) delete never leaves a half checkpoint under a valid name.
        trash = path.with_name(f".{path.name}.deleting")
        path.replace(trash)
        shutil.rmtree(trash, ignore_errors=True)

    def _remove_leftovers(self) -> None:
        """Delete temporary and half-deleted directories left by a killed process."""
        if self.directory.is_dir():
            for p in self.directory.iterdir():
                if p.name.startswith(".") and p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
