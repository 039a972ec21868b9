"""Export a ``GPT`` to a Hugging Face ``GPT2LMHeadModel`` directory (config.json + model.safetensors).

The architectures are identical, so export is a renaming plus one transpose: GPT-2's ``Conv1D`` stores
weights as ``[in, out]`` where ``nn.Linear`` stores ``[out, in]``. Attention-only models get an MLP with
all-zero weights and biases, whose output is exactly zero, so the exported model computes the same
function. Writing needs only safetensors (transformers is needed to *load* the result, not to write it).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer
from torch import Tensor

from repeatlab.errors import RepeatlabError
from repeatlab.io import atomic_directory
from repeatlab.models.gpt import GPT

END_OF_TEXT = "<|endoftext|>"


def export_hf(model: GPT, out_dir: Path, *, tokenizer_file: Path | None = None, overwrite: bool = False) -> None:
    """Write ``out_dir`` so that ``AutoModelForCausalLM.from_pretrained(out_dir)`` gives the same logits.

    With ``tokenizer_file`` (a ``tokenizers`` tokenizer.json), the tokenizer is copied alongside so that
    ``AutoTokenizer.from_pretrained(out_dir)`` loads it; if it has a ``<|endoftext|>`` token, that id
    becomes the model's bos/eos token. The directory appears atomically; an existing one is an error
    unless ``overwrite``.
    """
    model.config.require_gpt2("the Hugging Face export")
    out_dir = Path(out_dir)
    tokenizer = _load_tokenizer(Path(tokenizer_file), model.config.vocab_size) if tokenizer_file else None
    eos_id = tokenizer.token_to_id(END_OF_TEXT) if tokenizer is not None else None
    tensors = hf_state_dict(model)
    dtype = next(iter(tensors.values())).dtype
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        _write_json(tmp / "config.json", hf_config(model, eos_token_id=eos_id, dtype=dtype))
        if tokenizer_file is not None:
            shutil.copyfile(tokenizer_file, tmp / "tokenizer.json")
            tokenizer_config: dict[str, Any] = {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "model_max_length": model.config.context,
                # repeatlab encodes a literal end-of-text string inside a text as plain text (TextTokenizer), so
                # the exported tokenizer must too, or the two disagree on such texts.
                "split_special_tokens": True,
            }
            if eos_id is not None:
                tokenizer_config |= {"bos_token": END_OF_TEXT, "eos_token": END_OF_TEXT, "unk_token": END_OF_TEXT}
            _write_json(tmp / "tokenizer_config.json", tokenizer_config)


def hf_config(model: GPT, *, eos_token_id: int | None = None, dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    """The ``GPT2Config`` fields (as plain JSON data) describing ``model``; dropout is off."""
    config = model.config
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": config.vocab_size,
        "n_positions": config.context,
        "n_ctx": config.context,
        "n_embd": config.d_model,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_inner": 4 * config.d_model,
        "activation_function": "gelu_new",
        "layer_norm_epsilon": config.layer_norm_eps,
        "initializer_range": config.init_std,
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "tie_word_embeddings": True,
        "use_cache": True,
        "bos_token_id": eos_token_id,
        "eos_token_id": eos_token_id,
        "dtype": str(dtype).removeprefix("torch."),
    }


def hf_state_dict(model: GPT) -> dict[str, Tensor]:
    """``model``'s weights under GPT2LMHeadModel names, Conv1D weights transposed, tied head stored once."""
    d = model.config.d_model
    src = {name: t.detach().to("cpu") for name, t in model.state_dict().items()}
    dtype = src["wte.weight"].dtype
    out = {
        "transformer.wte.weight": src["wte.weight"],
        "transformer.wpe.weight": src["wpe.weight"],
        "transformer.ln_f.weight": src["ln_f.weight"],
        "transformer.ln_f.bias": src["ln_f.bias"],
    }
    # Attention-only models have no ln_2/MLP: export an identity LayerNorm and an all-zero MLP, whose
    # output is exactly zero, so the HF model computes the same function.
    defaults = {
        "ln_2.weight": torch.ones(d, dtype=dtype),
        "ln_2.bias": torch.zeros(d, dtype=dtype),
        "mlp.c_fc.weight": torch.zeros(4 * d, d, dtype=dtype),
        "mlp.c_fc.bias": torch.zeros(4 * d, dtype=dtype),
        "mlp.c_proj.weight": torch.zeros(d, 4 * d, dtype=dtype),
        "mlp.c_proj.bias": torch.zeros(d, dtype=dtype),
    }
    names = ["ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
             "attn.c_proj.bias", *defaults]
    for i in range(model.config.n_layer):
        for name in names:
            t = src.get(f"blocks.{i}.{name}")
            t = defaults[name].clone() if t is None and name in defaults else t  # clone: one tensor per layer
            if t is None:
                raise RepeatlabError(f"model has no tensor blocks.{i}.{name}")
            # Conv1D stores [in, out]; nn.Linear stores [out, in].
            is_linear_weight = name.endswith(".weight") and not name.startswith("ln_")
            out[f"transformer.h.{i}.{name}"] = t.t() if is_linear_weight else t
    return {name: t.contiguous() for name, t in out.items()}


def _load_tokenizer(path: Path, vocab_size: int) -> Tokenizer:
    if not path.is_file():
        raise FileNotFoundError(f"tokenizer file {path} does not exist")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception for unreadable JSON
        raise RepeatlabError(f"{path} is not a tokenizers tokenizer.json: {exc}") from None
    if tokenizer.get_vocab_size() > vocab_size:
        raise RepeatlabError(
            f"tokenizer {path} has {tokenizer.get_vocab_size()} tokens but the model's vocab_size is {vocab_size}"
        )
    return tokenizer


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
