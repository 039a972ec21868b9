"""Parity with transformers' GPT2LMHeadModel through ``export_hf`` (the reference implementation)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from repeatlab.data.tokens import byte_tokenizer
from repeatlab.models import GPT, ModelConfig
from repeatlab.models.export import export_hf

transformers = pytest.importorskip("transformers")


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def trained_looking(mlp: bool) -> GPT:
    """A tiny model with every parameter (LayerNorms and biases too) perturbed away from its init."""
    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=2, d_model=32, n_head=4, vocab_size=40, context=16, mlp=mlp))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


@pytest.mark.parametrize("mlp", [True, False])
def test_hf_logits_match(tmp_path: Path, mlp: bool) -> None:
    model = trained_looking(mlp)
    export_hf(model, tmp_path / "hf")
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", attn_implementation="eager").eval()
    assert type(hf).__name__ == "GPT2LMHeadModel"
    tokens = torch.randint(0, 40, (2, 16))
    with torch.no_grad():
        ours, theirs = model(tokens), hf(tokens).logits
    torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=1e-4)
    assert hf.lm_head.weight.data_ptr() == hf.transformer.wte.weight.data_ptr()


def test_tokenizer_exported(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(["the cat sat on the mat"] * 20, trainer=trainer)
    tok_file = tmp_path / "tokenizer.json"
    tokenizer.save(str(tok_file))
    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=1, d_model=16, n_head=2, vocab_size=tokenizer.get_vocab_size(), context=8))
    export_hf(model, tmp_path / "hf", tokenizer_file=tok_file)
    hf_tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert hf_tok("the cat")["input_ids"] == tokenizer.encode("the cat").ids
    assert hf_tok.eos_token == "<|endoftext|>"
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf")
    assert hf.config.eos_token_id == tokenizer.token_to_id("<|endoftext|>")


def test_tokenizer_larger_than_vocab_is_rejected(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models

    tok_file = tmp_path / "tokenizer.json"
    Tokenizer(models.BPE(vocab={str(i): i for i in range(10)}, merges=[])).save(str(tok_file))
    model = GPT(ModelConfig(n_layer=1, d_model=16, n_head=2, vocab_size=5, context=8))
    with pytest.raises(ValueError, match="10 tokens"):
        export_hf(model, tmp_path / "hf", tokenizer_file=tok_file)
    assert not (tmp_path / "hf").exists()


def test_existing_directory_needs_overwrite(tmp_path: Path) -> None:
    model = trained_looking(True)
    export_hf(model, tmp_path / "hf")
    with pytest.raises(FileExistsError):
        export_hf(model, tmp_path / "hf")
    export_hf(model, tmp_path / "hf", overwrite=True)


@pytest.mark.parametrize("text", ["a<|endoftext|>b", "<|endoftext|>", "plain text"])
def test_exported_tokenizer_encodes_a_literal_end_of_text_as_repeatlab_does(tmp_path: Path, text: str) -> None:
    tokenizer = byte_tokenizer()
    tokenizer.save(tmp_path / "tokenizer.json")
    model = GPT(ModelConfig(n_layer=1, d_model=16, n_head=2, vocab_size=tokenizer.vocab_size, context=8))
    export_hf(model, tmp_path / "hf", tokenizer_file=tmp_path / "tokenizer.json")
    hf_tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert hf_tok(text)["input_ids"] == tokenizer.encode(text)  # a literal end-of-text is text, 13 byte ids
    assert hf_tok.eos_token_id == tokenizer.eot_id  # the end-of-text token itself is still the special one
