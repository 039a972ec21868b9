"""ICL/IWL query scores and the query's induction-head score on the in-context classification task."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from repeatlab.data.classification import ClassificationTask
from repeatlab.models.gpt import GPT
from repeatlab.models.sizes import model_config
from repeatlab.probes.classification import pair_scores, query_induction_scores, query_score
from repeatlab.probes.patterns import induction_pattern

TASK = ClassificationTask(n_classes=64, n_labels=8, n_pairs=6, burstiness=2, seed=1)


def model(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(model_config("cpu-2l-24", vocab_size=TASK.vocab_size, context=TASK.context)).eval()


def rows(name: str, n: int = 64) -> torch.Tensor:
    return torch.from_numpy(TASK.eval_sequences(name, n, seed=2))


def test_uniform_attention_scores_the_share_of_targets_among_visible_keys() -> None:
    gpt = model()
    with torch.no_grad():
        for block in gpt.blocks:
            block.attn.c_attn.weight[: 2 * gpt.config.d_model].zero_()  # q = k = 0 (biases zero at init)
            block.attn.c_attn.bias.zero_()
    icl = rows("icl")
    position = TASK.query_position
    expected = induction_pattern(icl[:, : position + 1])[:, position].sum(-1).double().mean() / (position + 1)
    scores = query_induction_scores(gpt, icl, TASK)
    assert scores.shape == (2, 2)
    assert torch.allclose(scores, torch.full((2, 2), float(expected)), atol=1e-6)


def test_query_score_reads_the_label_logits_at_the_query() -> None:
    gpt = model()
    icl = rows("icl")
    answer = icl[:, TASK.query_position + 1]  # label tokens
    # A final LayerNorm that outputs label 3's embedding makes the model guess label 3 everywhere.
    label3 = TASK.n_classes + 3
    with torch.no_grad():
        gpt.ln_f.weight.zero_()
        gpt.ln_f.bias.copy_(gpt.wte.weight[label3] * 100)
    score = query_score(gpt, icl, TASK)
    assert 0 < score.accuracy == pytest.approx(float((answer == label3).float().mean()))
    with torch.no_grad():
        logits = gpt(icl[:, : TASK.query_position + 1])[:, -1]
    expected_loss = torch.nn.functional.cross_entropy(logits, answer)
    assert score.loss == pytest.approx(float(expected_loss), rel=1e-5)


def test_query_induction_needs_an_earlier_copy() -> None:
    with pytest.raises(ValueError, match="no earlier copy of its query"):
        query_induction_scores(model(), rows("iwl"), TASK)


def test_query_score_checks_the_row_shape() -> None:
    with pytest.raises(ValueError, match=r"rows must be \[n, 14\]"):
        query_score(model(), rows("icl")[:, :-2], TASK)


class Oracle(torch.nn.Module):
    """Logits that pick, at every item position, either the class's fixed label or the label of the item's latest
    earlier copy in the context (label 0 when there is none): perfect in-weights or perfect in-context learning."""

    def __init__(self, *, in_context: bool) -> None:
        super().__init__()
        self.in_context = in_context
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(*tokens.shape, TASK.vocab_size)
        for b, row in enumerate(tokens.tolist()):
            for q in range(0, len(row), 2):
                item = row[q]
                label = int(TASK.class_labels[item]) if item < TASK.n_classes else 0
                if self.in_context:
                    earlier = [k for k in range(0, q, 2) if row[k] == item]
                    label = row[earlier[-1] + 1] - TASK.n_classes if earlier else 0
                logits[b, q, TASK.n_classes + label] = 1.0
        return logits


def test_pair_scores_separate_weights_from_context() -> None:
    rows = torch.from_numpy(np.concatenate([TASK.training_sequences(300, seed=4),
                                            np.full((300, 1), TASK.eot_id)], axis=1))
    weights = pair_scores(Oracle(in_context=False), rows, TASK)
    context = pair_scores(Oracle(in_context=True), rows, TASK)
    assert weights["iwl_first"] == 1.0 and context["icl_repeat"] == 1.0
    # Each oracle is near chance on the other's pairs: fresh labels agree with the fixed map 1 time in 8, and
    # "label 0" is right at first occurrences for the classes whose fixed label is 0.
    assert weights["icl_repeat"] < 0.3 and context["iwl_first"] < 0.3


def test_with_exemplars_the_induction_target_is_the_label_after_an_item_of_the_same_class() -> None:
    """With several exemplars per class the query's exact token is often absent from the context; the induction
    target is then the label after an earlier item of its class (uniform attention scores their share)."""
    task = ClassificationTask(n_classes=64, n_labels=8, n_pairs=6, burstiness=2, seed=1, n_exemplars=4)
    torch.manual_seed(0)
    gpt = GPT(model_config("cpu-2l-24", vocab_size=task.vocab_size, context=task.context)).eval()
    with torch.no_grad():
        for block in gpt.blocks:
            block.attn.c_attn.weight[: 2 * gpt.config.d_model].zero_()
            block.attn.c_attn.bias.zero_()
    icl = torch.from_numpy(task.eval_sequences("icl", 64, seed=2))
    position = task.query_position
    exact = induction_pattern(icl[:, : position + 1])[:, position].sum(-1)
    assert (exact == 0).any()  # some queries' own token is not in the context
    by_class = induction_pattern(task.by_class(icl[:, : position + 1]))[:, position].sum(-1)
    assert (by_class >= task.burstiness).all()
    expected = by_class.double().mean() / (position + 1)
    assert torch.allclose(query_induction_scores(gpt, icl, task), torch.full((2, 2), float(expected)), atol=1e-6)
