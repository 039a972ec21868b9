"""A repeatlab model exported to Hugging Face loads in TransformerLens 4.x, with the same logits and head ranking.

The path a user takes: ``repeatlab export RUN OUT --to hf`` (which is ``export_hf`` with the run's tokenizer), then
``TransformerBridge.boot_transformers(OUT, hf_model=..., tokenizer=...)``. TransformerLens's ``detect_head``
averages over every query, repeatlab over the queries with a target; ``attention_scores(queries="all")`` is
TransformerLens's number, and the two are related by ``n_targeted / T`` (``probes.heads.QueryAverage``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from typer.testing import CliRunner

from repeatlab.cli.__main__ import app
from repeatlab.data.mixture import MixtureSpec, make_mixture
from repeatlab.data.prepared import PreparedDataset
from repeatlab.data.tokens import byte_tokenizer
from repeatlab.models.export import END_OF_TEXT, export_hf
from repeatlab.models.gpt import GPT
from repeatlab.probes import attention_scores, candidate_tokens, repeated_random_tokens, top_heads
from repeatlab.train.run import load_run

from .conftest import VOCAB, Handmade

transformers = pytest.importorskip("transformers")
pytest.importorskip("transformer_lens")
from transformer_lens.head_detector import detect_head  # noqa: E402  (only once the skip has passed)
from transformer_lens.model_bridge import TransformerBridge  # noqa: E402

runner = CliRunner()
SPAN = 20  # the induction probe: a start token, then SPAN random tokens twice
DETECTORS = {"induction": "induction_head", "previous_token": "previous_token_head",
             "duplicate_token": "duplicate_token_head"}  # fmt: skip


@dataclass(frozen=True)
class Booted:
    model: GPT
    bridge: TransformerBridge
    probe: torch.Tensor
    texts: list[str]


@pytest.fixture(scope="module")
def booted(handmade: Handmade, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Booted]:
    """The hand-built induction model exported with a word-level tokenizer whose ``<|endoftext|>`` is its start."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        root = tmp_path_factory.mktemp("tl")
        vocab = {f"t{i}": i for i in range(VOCAB)} | {END_OF_TEXT: handmade.start_token}
        del vocab[f"t{handmade.start_token}"]
        tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token=END_OF_TEXT))
        tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        tokenizer.save(str(root / "tokenizer.json"))
        export_hf(handmade.model, root / "hf", tokenizer_file=root / "tokenizer.json")
        hf = transformers.AutoModelForCausalLM.from_pretrained(root / "hf", attn_implementation="eager").eval()
        hf_tokenizer = transformers.AutoTokenizer.from_pretrained(root / "hf")
        bridge = TransformerBridge.boot_transformers(
            str(root / "hf"), hf_model=hf, tokenizer=hf_tokenizer, device="cpu"
        )
        candidates = candidate_tokens(VOCAB, exclude=[handmade.start_token])
        probe = repeated_random_tokens(candidates, n_sequences=4, length=SPAN, n_repeats=2,
                                       start_token=handmade.start_token, generator=torch.Generator().manual_seed(0))
        texts = [" ".join(hf_tokenizer.convert_ids_to_tokens(row[1:].tolist())) for row in probe]
        yield Booted(model=handmade.model, bridge=bridge, probe=probe, texts=texts)


def test_the_bridge_tokenizes_and_computes_as_repeatlab(booted: Booted) -> None:
    # TransformerLens prepends the model's BOS, which the export set to the start token the probe begins with.
    assert torch.equal(booted.bridge.to_tokens(booted.texts), booted.probe)
    with torch.no_grad():
        ours, theirs = booted.model(booted.probe), booted.bridge(booted.probe)
    torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", list(DETECTORS))
def test_detect_head_ranks_heads_as_repeatlab_and_all_queries_is_its_number(booted: Booted, name: str) -> None:
    theirs = detect_head(booted.bridge, booted.texts, DETECTORS[name])  # [n_layers, n_heads]
    ours_all = attention_scores(booted.model, booted.probe, [name], queries="all")[name]
    ours = attention_scores(booted.model, booted.probe, [name])[name]
    torch.testing.assert_close(ours_all, theirs.float(), atol=1e-5, rtol=1e-4)
    n_heads = ours.numel()
    assert top_heads(theirs, n_heads) == top_heads(ours, n_heads) == top_heads(ours_all, n_heads)


def test_a_perfect_induction_head_scores_one_here_and_n_targeted_over_t_there(
    booted: Booted, handmade: Handmade
) -> None:
    layer, head = handmade.induction_head
    theirs = detect_head(booted.bridge, booted.texts, "induction_head")[layer, head].item()
    ours = attention_scores(booted.model, booted.probe, ["induction"])["induction"][layer, head].item()
    assert ours == pytest.approx(1.0, abs=1e-4)
    assert theirs == pytest.approx(ours * SPAN / (2 * SPAN + 1), abs=1e-4)  # n_targeted = SPAN of T = 2 SPAN + 1



def test_a_trained_run_exported_by_the_cli_loads_with_its_tokenizer(
    prepared: PreparedDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole user path: ``repeatlab train``, ``repeatlab export --to hf``, then TransformerLens on text."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    context = prepared.context
    make_mixture(prepared.path, MixtureSpec(total_tokens=16 * context, seed=0), tmp_path / "mixture")
    run_dir, out = tmp_path / "run", tmp_path / "hf"
    trained = runner.invoke(app, [
        "train", str(run_dir), "--dataset", str(prepared.path), "--mixture", str(tmp_path / "mixture"),
        "--model", "tiny-1l", "--batch-tokens", str(4 * context), "--device", "cpu",
        "--set", "train.cpu_threads=1", "--set", "train.n_log_evals=1", "--set", "train.eval_test_sequences=4",
    ])  # fmt: skip
    assert trained.exit_code == 0, trained.output
    exported = runner.invoke(app, ["export", str(run_dir), str(out), "--to", "hf"])
    assert exported.exit_code == 0, exported.output

    hf = transformers.AutoModelForCausalLM.from_pretrained(out, attn_implementation="eager").eval()
    bridge = TransformerBridge.boot_transformers(
        str(out), hf_model=hf, tokenizer=transformers.AutoTokenizer.from_pretrained(out), device="cpu"
    )
    text = "the quick brown fox: alpha3 beta14 gamma25"
    tokens = bridge.to_tokens(text)  # [1, T]: BOS, which the export made repeatlab's end-of-text, then the bytes
    ours = byte_tokenizer()
    assert tokens[0].tolist() == [ours.eot_id, *ours.encode(text)]
    run = load_run(run_dir)
    with torch.no_grad():
        torch.testing.assert_close(bridge(text), run.model(tokens), atol=1e-4, rtol=1e-4)
