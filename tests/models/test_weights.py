"""safetensors round trip and clear errors for missing, corrupt and mismatched weights files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from repeatlab.models import GPT, ModelConfig
from repeatlab.models.weights import (
    CheckpointError,
    CheckpointMismatchError,
    CorruptCheckpointError,
    load_model,
    read_config,
    save_model,
)

CONFIG = ModelConfig(n_layer=2, d_model=32, n_head=4, vocab_size=50, context=16, mlp=False)


def saved(tmp_path: Path) -> tuple[GPT, Path]:
    torch.manual_seed(0)
    model = GPT(CONFIG).eval()
    path = tmp_path / "model.safetensors"
    save_model(model, path)
    return model, path


def test_round_trip(tmp_path: Path) -> None:
    model, path = saved(tmp_path)
    loaded = load_model(path, expected=CONFIG).eval()
    assert loaded.config == CONFIG and read_config(path) == CONFIG
    tokens = torch.randint(0, 50, (2, 16))
    torch.testing.assert_close(loaded(tokens), model(tokens), atol=0, rtol=0)
    assert not any(p.is_meta for p in loaded.parameters())
    assert list(tmp_path.iterdir()) == [path]  # no temporary files left behind


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CorruptCheckpointError, match="does not exist"):
        load_model(tmp_path / "nope.safetensors")


def test_truncated_file(tmp_path: Path) -> None:
    _, path = saved(tmp_path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CorruptCheckpointError, match="truncated or corrupt"):
        load_model(path)


def test_garbage_file(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"\x00" * 3)
    with pytest.raises(CorruptCheckpointError):
        load_model(path)


def test_flipped_byte_fails_checksum(tmp_path: Path) -> None:
    _, path = saved(tmp_path)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpointError, match="checksum"):
        load_model(path)


def test_foreign_safetensors_file(tmp_path: Path) -> None:
    path = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(2)}, str(path))
    with pytest.raises(CorruptCheckpointError, match="not written by repeatlab"):
        load_model(path)


def test_config_mismatch_names_fields(tmp_path: Path) -> None:
    _, path = saved(tmp_path)
    other = dataclasses.replace(CONFIG, d_model=64, mlp=True)
    with pytest.raises(CheckpointMismatchError, match=r"d_model: file has 32, expected 64.*mlp: file has False"):
        load_model(path, expected=other)
    assert issubclass(CheckpointMismatchError, CheckpointError) and issubclass(CheckpointError, ValueError)
