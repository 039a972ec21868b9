"""Shared fixtures of the probe tests: a hand-built induction circuit and a tiny prepared run."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import torch

from repeatlab.data.mixture import Mixture, MixtureSpec, build_mixture
from repeatlab.data.prepare import PrepareConfig, prepare_dataset
from repeatlab.data.prepared import PreparedDataset
from repeatlab.models.gpt import GPT, ModelConfig


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Tiny matmuls on a shared 2-core machine run several times faster without intra-op threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@dataclass(frozen=True)
class Handmade:
    """A two-layer attention-only model whose weights implement an induction circuit."""

    model: GPT
    start_token: int
    previous_token_head: tuple[int, int]
    induction_head: tuple[int, int]
    bos_head: tuple[int, int]


VOCAB, CONTEXT, D_MODEL, N_HEAD = 64, 128, 512, 4
PREV, BOS, INDUCTION = (0, 1), (0, 3), (1, 2)


@torch.no_grad()
def build_handmade() -> Handmade:
    """Set every weight from the mechanism (Elhage et al. 2021, Olsson et al. 2022); nothing is trained.

    Residual stream layout: one-hot token ``E`` (dims 0..63), one-hot position ``P`` (64..191), the
    previous token ``S`` (192..255, written by the layer-0 head), and one balancing dimension (256)
    that makes every written vector sum to zero. With zero-mean inputs LayerNorm is an exact rescale,
    so the one-hot features survive it with known sizes ``c = 1 / std``.

    * head 0.1, previous token: query = position ``p`` shifted to ``p - 1``, key = position; value =
      token; writes the attended token into ``S``.
    * head 0.3 attends to the start (the query bias matches position 0's key) and writes nothing.
    * head 1.2, induction: query = current token in ``E``, key = previous token in ``S``, so it attends
      to the position *after* an earlier occurrence of the current token; value = that position's
      token, written back into ``E`` with gain 4 so the tied unembedding predicts it.
    * the other heads have zero weights (uniform attention, no output).
    """
    config = ModelConfig(n_layer=2, d_model=D_MODEL, n_head=N_HEAD, vocab_size=VOCAB, context=CONTEXT, mlp=False)
    model = GPT(config)
    for p in model.parameters():
        p.zero_()
    for ln in [model.ln_f, *(b.ln_1 for b in model.blocks)]:
        ln.weight.fill_(1.0)
    D, Dh = D_MODEL, D_MODEL // N_HEAD
    E, P, S, BAL = 0, VOCAB, VOCAB + CONTEXT, VOCAB + CONTEXT + VOCAB
    model.wte.weight[torch.arange(VOCAB), E + torch.arange(VOCAB)] = 1.0
    model.wte.weight[:, BAL] = -1.0
    model.wpe.weight[torch.arange(CONTEXT), P + torch.arange(CONTEXT)] = 1.0
    model.wpe.weight[:, BAL] = -1.0
    c0 = math.sqrt(D / 6)  # one-hot size after ln_1 of layer 0: residual = e_tok + e_pos - 2 e_bal
    c1 = math.sqrt(D / 12)  # after layer 0 adds e_prev - e_bal
    logit = 20.0  # attention logit of a target; others are 0

    def rows(kind: int, head: int) -> slice:  # rows of c_attn for q (0), k (1), v (2) of a head
        return slice(kind * D + head * Dh, kind * D + (head + 1) * Dh)

    a0, a1 = model.blocks[0].attn, model.blocks[1].attn
    i = torch.arange(CONTEXT - 1)
    q, k, v = (a0.c_attn.weight[rows(n, PREV[1])] for n in range(3))
    q[i, P + i + 1] = logit * math.sqrt(Dh) / c0**2  # query dim p - 1 lights up at position p
    k[torch.arange(CONTEXT), P + torch.arange(CONTEXT)] = 1.0
    v[torch.arange(VOCAB), E + torch.arange(VOCAB)] = 1.0
    out = PREV[1] * Dh + torch.arange(VOCAB)
    a0.c_proj.weight[S + torch.arange(VOCAB), out] = 1.0 / c0
    a0.c_proj.weight[BAL, out] = -1.0 / c0
    a0.c_attn.bias[rows(0, BOS[1]).start] = logit * math.sqrt(Dh) / c0
    a0.c_attn.weight[rows(1, BOS[1]).start, P] = 1.0
    t = torch.arange(VOCAB)
    q, k, v = (a1.c_attn.weight[rows(n, INDUCTION[1])] for n in range(3))
    q[t, E + t] = logit * math.sqrt(Dh) / c1**2
    k[t, S + t] = 1.0
    v[t, E + t] = 1.0
    out = INDUCTION[1] * Dh + t
    a1.c_proj.weight[E + t, out] = 4.0 / c1
    a1.c_proj.weight[BAL, out] = -4.0 / c1
    return Handmade(model=model.eval(), start_token=VOCAB - 1, previous_token_head=PREV, induction_head=INDUCTION,
                    bos_head=BOS)


@pytest.fixture(scope="session")
def handmade() -> Handmade:
    return build_handmade()


CORPUS = "\n\n".join(
    " ".join(f"{word}{(7 * doc + 3 * j) % 97}" for j, word in enumerate(["alpha", "beta", "gamma", "delta", "omega"] * 30))
    for doc in range(120)
)


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    """A byte-level dataset of 120 synthetic documents, context 128."""
    root = tmp_path_factory.mktemp("probes-data")
    source = root / "corpus.txt"
    source.write_text(CORPUS, encoding="utf-8")
    return prepare_dataset(PrepareConfig(source=str(source), tokenizer="byte", context=128, test_fraction=0.1), root / "prepared")


@pytest.fixture(scope="session")
def mixture(prepared: PreparedDataset) -> Mixture:
    n_pool = prepared.n_sequences("train")
    spec = MixtureSpec(total_tokens=(n_pool // 2) * 128, repeated_fraction=0.5, repeated_epochs=4, seed=0)
    return build_mixture(prepared, spec)
