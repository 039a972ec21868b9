"""Save and load model weights as safetensors (never pickle), with the config and a checksum in the header.

A weights file is self-describing: its metadata holds the ``ModelConfig`` as JSON and a SHA-256 of the
tensor bytes, so ``load_model`` can rebuild the model without other files and can tell a corrupt file
from a mismatched one. Writes are atomic (``repeatlab.io.atomic_write_bytes``). The unembedding is tied
to the token embedding and is stored once, as ``wte.weight``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import Tensor

from repeatlab.config import from_dict, to_dict
from repeatlab.errors import RepeatlabError
from repeatlab.io import atomic_write_bytes
from repeatlab.models.gpt import GPT, ModelConfig

FORMAT_VERSION = "1"
_CONFIG_KEY = "repeatlab.model_config"
_SHA_KEY = "repeatlab.sha256"
_VERSION_KEY = "repeatlab.format_version"


class CheckpointError(RepeatlabError):
    """A weights file cannot be used: it is missing, corrupt, or does not match what was expected."""


class CorruptCheckpointError(CheckpointError):
    """The file is missing, truncated, not safetensors, or its tensors fail the stored checksum."""


class CheckpointMismatchError(CheckpointError):
    """The file is intact but its config or tensor shapes differ from what the caller expected."""


def save_model(model: GPT, path: Path) -> None:
    """Atomically write ``model``'s weights and config to a safetensors file at ``path``."""
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in model.state_dict().items()}
    metadata = {
        "format": "pt",
        _VERSION_KEY: FORMAT_VERSION,
        _CONFIG_KEY: json.dumps(to_dict(model.config), sort_keys=True),
        _SHA_KEY: _checksum(tensors),
    }
    atomic_write_bytes(path, _sorted_header(save_safetensors(tensors, metadata=metadata)))


def _sorted_header(data: bytes) -> bytes:
    """``data`` with its safetensors JSON header rewritten with sorted keys.

    safetensors writes the metadata in hash-map order, which changes from process to process, so two runs
    with equal weights would give files with different bytes (and hashes). The header's length is unchanged
    (the same keys and values) and stays padded with spaces to a multiple of 8, as the format asks.
    """
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + data[8 + size :]


def read_config(path: Path) -> ModelConfig:
    """The ``ModelConfig`` stored in a weights file (reads the whole file to verify it)."""
    return _read(Path(path))[0]


def load_model(path: Path, *, expected: ModelConfig | None = None, device: str | torch.device = "cpu") -> GPT:
    """Rebuild a ``GPT`` from a file written by ``save_model``, checking the config and every tensor.

    Raises ``CorruptCheckpointError`` for a missing or damaged file and ``CheckpointMismatchError`` when
    the stored config differs from ``expected`` or a tensor's name or shape does not fit the config; both
    messages say what differs.
    """
    path = Path(path)
    config, tensors = _read(path)
    if expected is not None and config != expected:
        diffs = [
            f"{f.name}: file has {getattr(config, f.name)!r}, expected {getattr(expected, f.name)!r}"
            for f in dataclasses.fields(ModelConfig)
            if getattr(config, f.name) != getattr(expected, f.name)
        ]
        raise CheckpointMismatchError(f"{path}: model config differs ({'; '.join(diffs)})")
    with torch.device("meta"):
        model = GPT(config)
    wanted = model.state_dict()
    missing = sorted(set(wanted) - set(tensors))
    unexpected = sorted(set(tensors) - set(wanted))
    if missing or unexpected:
        raise CheckpointMismatchError(
            f"{path}: tensor names do not fit the stored config (missing: {missing or 'none'}; "
            f"unexpected: {unexpected or 'none'})"
        )
    for name, param in wanted.items():
        if tensors[name].shape != param.shape:
            raise CheckpointMismatchError(
                f"{path}: tensor {name} has shape {tuple(tensors[name].shape)}, "
                f"the config needs {tuple(param.shape)}"
            )
    model.load_state_dict(tensors, strict=True, assign=True)
    return model.to(device)


def _read(path: Path) -> tuple[ModelConfig, dict[str, Tensor]]:
    if not path.is_file():
        raise CorruptCheckpointError(f"weights file {path} does not exist")
    data = path.read_bytes()
    try:
        tensors = load_safetensors(data)
        metadata = _metadata(data)
    except (SafetensorError, ValueError, UnicodeDecodeError) as exc:
        raise CorruptCheckpointError(
            f"{path} is not a readable safetensors file (truncated or corrupt?): {exc}"
        ) from None
    if metadata.get(_VERSION_KEY) != FORMAT_VERSION or _CONFIG_KEY not in metadata:
        raise CorruptCheckpointError(
            f"{path} was not written by repeatlab.models.save_model (format version "
            f"{metadata.get(_VERSION_KEY)!r}, expected {FORMAT_VERSION!r})"
        )
    if metadata.get(_SHA_KEY) != _checksum(tensors):
        raise CorruptCheckpointError(f"{path}: tensor data does not match its stored checksum; the file is corrupt")
    try:
        config = from_dict(ModelConfig, json.loads(metadata[_CONFIG_KEY]))
    except (json.JSONDecodeError, ValueError) as exc:
        raise CorruptCheckpointError(f"{path}: stored model config is invalid: {exc}") from None
    return config, tensors


def _metadata(data: bytes) -> dict[str, str]:
    # The safetensors header is an 8-byte little-endian length followed by that many bytes of JSON.
    n_header = int.from_bytes(data[:8], "little")
    if n_header > len(data) - 8:
        raise RepeatlabError("header length exceeds the file size")
    header = json.loads(data[8 : 8 + n_header].decode("utf-8"))
    metadata = header.get("__metadata__", {})
    if not isinstance(metadata, dict):
        raise RepeatlabError("__metadata__ is not a table")
    return metadata


def _checksum(tensors: dict[str, Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()
