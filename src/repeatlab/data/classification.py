"""In-context classification as a token task (Reddy 2023; Chan et al. 2022), written as a prepared dataset.

It exists because tiny CPU models form no induction heads on natural text (docs/reproduction.md), so the paper's
claim that repetition damages in-context copying more than test loss needs a corpus where copying is learned in
minutes. Here it is: within a few hundred steps a two-layer model learns to read a label off the context (an
induction-head pattern: the query item attends to the label after its earlier copy).

A sequence is ``n_pairs`` item-label pairs and an end-of-text token, which fills exactly one training window::

    x_1 l_1 x_2 l_2 ... x_P l_P <eot>

Items are class tokens ``0 .. n_classes - 1`` drawn from a Zipf distribution over classes (exponent
``zipf_exponent``: a few frequent classes, a long tail of rare ones), or, with ``n_exemplars = M > 1``, one of
each class's ``M`` exemplar tokens ``k M .. k M + M - 1`` (within-class variation); labels are the next
``n_labels`` tokens (from ``first_label``). Every class has a fixed label (the class-label map, drawn once from ``seed``), which a
model can learn *in weights*. The last pair is the query; its class also appears ``burstiness`` times among the
earlier pairs (or more, when the Zipf draw repeats it), so its label can also be read *in context*. In
``relabel_fraction`` of the training sequences the labels are drawn afresh for that sequence (the same class
keeps one label within it), so that only in-context learning predicts them; this, the burstiness and the rare
classes of the Zipf tail are what make in-context learning pay in Reddy's and Chan et al.'s experiments.

Two evaluation sets separate the mechanisms (Reddy's ICL and IWL tests in tokens), stored beside the splits:

* ``icl``: the query's class is in context, with labels drawn afresh per sequence: only reading the context helps
  (in-weights knowledge predicts the wrong label but for chance agreement, 1 / ``n_labels``);
* ``iwl``: the query's class is *not* in context, labels fixed: only in-weights knowledge helps. In training the
  query's class is always in context, so this set is out of distribution at the query position: a model that
  reads labels off the context copies some label there too. ``probes.pair_scores`` measures both abilities in
  distribution, on the test split.

What was measured on CPU before settling on the defaults (``attn-only-tiny-2l``, batches of 64, lr 3e-3):
with ``relabel_fraction = 0`` in-weights learning solves the task within 250 steps (IWL accuracy 1.0) and ICL
accuracy stays at chance for 3,000 steps; with ``0.5``, ICL accuracy jumps from 0.06 to 0.59 between steps 250
and 500 and reaches 0.99, while ``iwl`` accuracy first falls (0.97 -> 0.20) and recovers to 0.97 by step 3,000.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from tokenizers import Tokenizer, models

from repeatlab.config import added_later
from repeatlab.data.prepared import META_FILE, TOKENIZER_FILE, PreparedDataset, n_sequences_for
from repeatlab.data.tokens import EOT, TextTokenizer
from repeatlab.errors import RepeatlabError
from repeatlab.io import atomic_directory, atomic_save_npy, write_json

if TYPE_CHECKING:
    import torch

TASK_KIND = "classification"
"""``meta.json``'s ``task`` for a dataset written here (the probe that needs the evaluation sets checks it), and
the ``PrepareConfig.source`` that writes one."""
EVAL_SETS = ("icl", "iwl")
"""Names of the evaluation sets, each saved as ``{name}_eval.npy`` in the dataset directory."""
_LABEL_SEED_OFFSET = 7_919
ArrayT = TypeVar("ArrayT", np.ndarray, "torch.Tensor")


@dataclass(kw_only=True, frozen=True)
class ClassificationTask:
    """Parameters of the in-context classification task (see the module docstring)."""

    n_classes: int = 512
    """K: item classes, each one token."""
    n_labels: int = 32
    """L: label tokens; chance accuracy is 1 / L."""
    n_pairs: int = 8
    """Item-label pairs per sequence, the last one the query."""
    burstiness: int = 2
    """B: copies of the query's class among the earlier ``n_pairs - 1`` pairs."""
    zipf_exponent: float = 1.0
    """alpha: class ``k`` (0-based) is drawn with probability proportional to ``(k + 1) ** -alpha``."""
    relabel_fraction: float = 0.5
    """Share of training sequences whose labels are drawn afresh for the sequence."""
    seed: int = 0
    """Seeds the class-label map and every sequence."""
    n_train_sequences: int = 250_000
    """Sequences in the training pool (a run of T tokens needs T / context of them unrepeated)."""
    n_test_sequences: int = 4_096
    """Held-out sequences of the training distribution (test loss)."""
    n_eval_sequences: int = 512
    """Sequences in each evaluation set (``icl``, ``iwl``)."""
    n_exemplars: int = added_later(1)
    """Within-class variation, in tokens: each class has this many exemplar item tokens and every item is one of
    its class's exemplars drawn uniformly (Reddy's Gaussian within-class noise has no token equivalent; this
    makes in-weights learning learn ``n_exemplars`` tokens per class, and in-context learning match classes rather
    than tokens). 1: one token per class, the task as before."""

    def __post_init__(self) -> None:
        for name in ("n_train_sequences", "n_test_sequences", "n_eval_sequences"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise RepeatlabError(f"ClassificationTask.{name} must be a positive integer, got {value!r}")
        for name in ("n_classes", "n_labels", "n_pairs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 2:
                raise RepeatlabError(f"ClassificationTask.{name} must be an integer >= 2, got {value!r}")
        if not isinstance(self.burstiness, int) or not 1 <= self.burstiness <= self.n_pairs - 1:
            raise RepeatlabError(f"ClassificationTask.burstiness must be an integer in [1, n_pairs - 1 = "
                             f"{self.n_pairs - 1}], got {self.burstiness!r}")
        if self.n_classes <= self.n_pairs:
            raise RepeatlabError(f"ClassificationTask.n_classes ({self.n_classes}) must exceed n_pairs ({self.n_pairs}) "
                             "so that a context can leave the query's class out (the iwl set)")
        if not self.zipf_exponent >= 0:
            raise RepeatlabError(f"ClassificationTask.zipf_exponent must be >= 0, got {self.zipf_exponent!r}")
        if not isinstance(self.n_exemplars, int) or isinstance(self.n_exemplars, bool) or self.n_exemplars < 1:
            raise RepeatlabError(f"ClassificationTask.n_exemplars must be a positive integer, got {self.n_exemplars!r}")
        if not 0.0 <= self.relabel_fraction <= 1.0:
            raise RepeatlabError(f"ClassificationTask.relabel_fraction must be in [0, 1], got {self.relabel_fraction!r}")

    @property
    def context(self) -> int:
        """Tokens per sequence: the pairs and the end-of-text token."""
        return 2 * self.n_pairs + 1

    @property
    def first_label(self) -> int:
        """Token id of label 0: the item tokens (``n_classes * n_exemplars`` of them) come first."""
        return self.n_classes * self.n_exemplars

    @property
    def eot_id(self) -> int:
        return self.first_label + self.n_labels

    @property
    def vocab_size(self) -> int:
        return self.eot_id + 1

    @property
    def item_positions(self) -> slice:
        """Positions of the items in a sequence; each is followed by its label."""
        return slice(0, 2 * self.n_pairs, 2)

    @property
    def label_positions(self) -> slice:
        return slice(1, 2 * self.n_pairs, 2)

    def pairs(self, tokens: ArrayT) -> tuple[ArrayT, ArrayT]:
        """Items ``[..., n_pairs]`` (class ids) and 0-based labels ``[..., n_pairs]`` of token rows (numpy or
        torch)."""
        items, labels = tokens[..., self.item_positions], tokens[..., self.label_positions]
        return items // self.n_exemplars, labels - self.first_label

    def by_class(self, tokens: ArrayT) -> ArrayT:
        """Token rows with each item exemplar replaced by its class id (labels untouched: their ids are above every
        class id), so token-matching patterns match classes."""
        if self.n_exemplars == 1:
            return tokens
        out = tokens.clone() if hasattr(tokens, "clone") else tokens.copy()
        out[..., self.item_positions] //= self.n_exemplars
        return out

    @property
    def query_position(self) -> int:
        """Input position of the query item, whose next-token prediction is its label."""
        return 2 * self.n_pairs - 2

    @cached_property
    def class_labels(self) -> np.ndarray:
        """``[n_classes]`` the fixed label (0-based) of every class."""
        return np.random.default_rng(self.seed + _LABEL_SEED_OFFSET).integers(0, self.n_labels, self.n_classes)

    @cached_property
    def class_probabilities(self) -> np.ndarray:
        """``[n_classes]`` probability of each class at an item position (the Zipf law of ``zipf_exponent``)."""
        weights = np.arange(1, self.n_classes + 1, dtype=np.float64) ** -self.zipf_exponent
        return weights / weights.sum()

    def _classes(self, rng: np.random.Generator, shape: int | tuple[int, ...]) -> np.ndarray:
        return rng.choice(self.n_classes, size=shape, p=self.class_probabilities)

    def items(self, rng: np.random.Generator, n: int, *, query_in_context: bool = True) -> np.ndarray:
        """``[n, n_pairs]`` item classes; the query (last) class is in the context ``burstiness`` times, or never."""
        items = self._classes(rng, (n, self.n_pairs))
        query = items[:, -1]
        if query_in_context:
            earlier = self.n_pairs - 1
            # ``burstiness`` distinct earlier positions per row: the first B of a random permutation of each row.
            positions = np.argsort(rng.random((n, earlier)), axis=1)[:, : self.burstiness]
            np.put_along_axis(items[:, :earlier], positions, query[:, None], axis=1)
        else:
            clash = items[:, :-1] == query[:, None]
            while clash.any():
                items[:, :-1][clash] = self._classes(rng, int(clash.sum()))
                clash = items[:, :-1] == query[:, None]
        return items

    def fresh_labels(self, rng: np.random.Generator, items: np.ndarray) -> np.ndarray:
        """Labels drawn afresh per sequence, one per class within a sequence: ``[n, n_pairs]``."""
        per_class = rng.integers(0, self.n_labels, (len(items), self.n_classes))
        return np.take_along_axis(per_class, items, axis=1)

    def sequences(self, items: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Token ids ``[n, context]``: the pairs interleaved (each item one of its class's exemplars, drawn from
        ``rng``; with one exemplar, nothing is drawn), then end-of-text."""
        tokens = np.empty((len(items), self.context), dtype=np.int64)
        exemplars = rng.integers(0, self.n_exemplars, items.shape) if self.n_exemplars > 1 else 0
        tokens[:, self.item_positions] = items * self.n_exemplars + exemplars
        tokens[:, self.label_positions] = self.first_label + labels
        tokens[:, -1] = self.eot_id
        return tokens

    def training_sequences(self, n: int, seed: int) -> np.ndarray:
        """``[n, context]`` sequences of the training distribution (``relabel_fraction`` of them relabelled)."""
        rng = np.random.default_rng(seed)
        items = self.items(rng, n)
        labels = self.class_labels[items]
        relabel = rng.random(n) < self.relabel_fraction
        labels[relabel] = self.fresh_labels(rng, items[relabel])
        return self.sequences(items, labels, rng)

    def eval_sequences(self, name: str, n: int, seed: int) -> np.ndarray:
        """``[n, context + 1]`` rows of the ``icl`` or ``iwl`` evaluation set (a trailing end-of-text target)."""
        rng = np.random.default_rng(seed)
        if name == "icl":
            items = self.items(rng, n)
            labels = self.fresh_labels(rng, items)
        elif name == "iwl":
            items = self.items(rng, n, query_in_context=False)
            labels = self.class_labels[items]
        else:
            raise RepeatlabError(f"unknown evaluation set {name!r}; expected one of {', '.join(EVAL_SETS)}")
        rows = self.sequences(items, labels, rng)
        return np.concatenate([rows, np.full((n, 1), self.eot_id)], axis=1)


def eval_file(name: str) -> str:
    """File name of evaluation set ``name`` inside a classification dataset."""
    return f"{name}_eval.npy"


def classification_tokenizer(task: ClassificationTask) -> TextTokenizer:
    """Word-level tokens ``c0 .. c{K-1}`` (classes; ``c{k}.{j}`` for exemplar ``j`` of class ``k`` when there are
    several), ``l0 .. l{L-1}`` (labels) and end-of-text, so decoded samples read as pairs."""
    m = task.n_exemplars
    vocab = ({f"c{k}": k for k in range(task.n_classes)} if m == 1 else
             {f"c{k}.{j}": k * m + j for k in range(task.n_classes) for j in range(m)})
    vocab |= {f"l{j}": task.first_label + j for j in range(task.n_labels)} | {EOT: task.eot_id}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token=EOT))
    tokenizer.add_special_tokens([EOT])
    return TextTokenizer(tokenizer)


def write_classification_dataset(
    task: ClassificationTask, out: str | Path, *, overwrite: bool = False, config: dict[str, Any] | None = None,
) -> Path:
    """The task's prepared dataset at ``out`` (built atomically; loads with ``load_prepared``): its training pool,
    test split and evaluation sets. ``config`` is recorded as ``meta.json``'s ``config`` (``prepare_dataset``
    passes its ``PrepareConfig``, which sweeps compare with their grid's)."""
    n_train, n_test = task.n_train_sequences, task.n_test_sequences
    meta: dict[str, object] = {
        "kind": "prepared", "task": TASK_KIND, "classification": asdict(task), "source": f"{TASK_KIND}:{task.seed}",
        "tokenizer": TASK_KIND, "vocab_size": task.vocab_size, "eot_id": task.eot_id, "dtype": "uint16",
        "context": task.context, "seed": task.seed, "n_documents": n_train + n_test,
        "n_train_removed_as_test_duplicates": 0, **({"config": config} if config is not None else {}),
    }
    with atomic_directory(out, overwrite=overwrite) as tmp:
        for split, n, seed in (("train", n_train, task.seed), ("test", n_test, task.seed + 1)):
            tokens = task.training_sequences(n, seed).reshape(-1).astype(np.uint16)
            tokens.tofile(tmp / f"{split}.bin")
            meta[split] = {"n_documents": n, "n_tokens": len(tokens), "n_chars": len(tokens),
                           "n_sequences": n_sequences_for(len(tokens), task.context)}
        for offset, name in enumerate(EVAL_SETS, start=2):
            atomic_save_npy(tmp / eval_file(name), task.eval_sequences(name, task.n_eval_sequences, task.seed + offset))
        classification_tokenizer(task).save(tmp / TOKENIZER_FILE)
        write_json(tmp / META_FILE, meta)
    return Path(out)


def dataset_task(dataset: PreparedDataset) -> ClassificationTask:
    """The task a prepared dataset was written from; ``ValueError`` if it is not a classification dataset."""
    if dataset.meta.get("task") != TASK_KIND:
        raise RepeatlabError(f"{dataset.path} is not an in-context classification dataset (its meta.json has no "
                         f"task = {TASK_KIND!r}); write one with repeatlab.data.classification."
                         "write_classification_dataset")
    return ClassificationTask(**dataset.meta[TASK_KIND])


def pair_score_sequences(dataset: PreparedDataset) -> np.ndarray:
    """The test-split rows ``[n_eval_sequences, context + 1]`` on which ``probes.pair_scores`` is measured (the
    first ones of the split, so every run and every evaluation scores the same sequences)."""
    task = dataset_task(dataset)
    return np.asarray(dataset.sequences("test")[: task.n_eval_sequences]).astype(np.int64)


def load_eval_sequences(dataset: PreparedDataset, name: str) -> np.ndarray:
    """Evaluation set ``name`` (``icl`` or ``iwl``) of a classification dataset, ``[n, context + 1]``."""
    dataset_task(dataset)
    if name not in EVAL_SETS:
        raise RepeatlabError(f"unknown evaluation set {name!r}; expected one of {', '.join(EVAL_SETS)}")
    return np.load(dataset.path / eval_file(name))


__all__ = ["EVAL_SETS", "TASK_KIND", "ClassificationTask", "classification_tokenizer", "dataset_task", "eval_file",
           "load_eval_sequences", "pair_score_sequences", "write_classification_dataset"]
