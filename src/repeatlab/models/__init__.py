"""GPT models with named hook points, the Hernandez et al. size family, safetensors weights and HF export.

``export_hf`` lives in ``repeatlab.models.export`` and is re-exported here; it needs only safetensors and
tokenizers to write, transformers only to load the result.
"""

from repeatlab.models.export import export_hf
from repeatlab.models.gpt import GPT, ModelConfig
from repeatlab.models.hooks import HookFn, HookPoint, hook_names, hooks, run_with_cache
from repeatlab.models.sizes import SIZES, SizeSpec, count_params, list_sizes, model_config
from repeatlab.models.weights import (
    CheckpointError,
    CheckpointMismatchError,
    CorruptCheckpointError,
    load_model,
    read_config,
    save_model,
)

__all__ = [
    "GPT",
    "SIZES",
    "CheckpointError",
    "CheckpointMismatchError",
    "CorruptCheckpointError",
    "HookFn",
    "HookPoint",
    "ModelConfig",
    "SizeSpec",
    "count_params",
    "export_hf",
    "hook_names",
    "hooks",
    "list_sizes",
    "load_model",
    "model_config",
    "read_config",
    "run_with_cache",
    "save_model",
]
