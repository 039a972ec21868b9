"""The one list of probes: each probe's name, what it reads, the inputs it needs and where it runs.

``run_probes`` (a checkpoint, ``probes.json``) and the step evaluators of ``repeatlab.dynamics`` (curves during
training) both select probes here and hand the union of their needs to ``probes.inputs.build_inputs``, so the
two score the same sequences for the same settings. Adding a probe is its measurement (a function of its own
module), one entry here and in ``ProbeName``, and its ``measure`` and ``ProbeResults`` field in ``probes.suite``;
a curve adds its metric names to ``dynamics.evaluators`` and to ``repeatlab.train.config.PROBE_METRICS`` (the
train layer sits below this one; a test keeps the two lists equal).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from repeatlab.errors import RepeatlabError

if TYPE_CHECKING:
    from repeatlab.probes.config import ProbeConfig

ProbeName = Literal["induction", "prefix_matching", "ov_copying", "icl", "copying", "memorisation", "ablation",
                    "classification", "regression"]
InputKind = Literal["induction_tokens", "prefix_matching_tokens", "test_rows", "paragraphs", "memorisation_rows",
                    "classification_sets", "regression_rows"]
"""What ``build_inputs`` can draw: random-token sequences of the induction or prefix-matching length (after the
start token), a dataset's held-out test rows, copying paragraphs from them, memorisation samples of the training
pool and the test split, a classification dataset's evaluation sets, and a regression dataset's test contexts."""
START_TOKEN_INPUTS: frozenset[InputKind] = frozenset({"induction_tokens", "prefix_matching_tokens", "paragraphs"})
"""Inputs that use the start token (the random sequences begin with it, the copying paragraphs follow it)."""


@dataclass(frozen=True, kw_only=True)
class Probe:
    """One probe as the rest of the package sees it; the measurement itself is a function of its own module."""

    name: ProbeName
    needs: tuple[InputKind, ...]
    """Inputs the probe reads (``ablation`` also reads the induction sequences when it picks its own heads)."""
    vectors: bool = False
    """Reads a vector model (in-context regression) rather than tokens."""
    checkpoint: bool = True
    """Runs in ``run_probes`` and lands in ``probes.json``."""
    metrics: tuple[str, ...] = ()
    """Names that ``train.probe_metrics`` may list to log this probe at every evaluation; empty: checkpoint only."""


PROBES: dict[str, Probe] = {probe.name: probe for probe in (
    # Order is the order run_probes measures in: ablation reuses the induction, ICL and copying results.
    Probe(name="induction", needs=("induction_tokens",), metrics=("induction", "previous_token", "duplicate_token")),
    Probe(name="prefix_matching", needs=("prefix_matching_tokens",), metrics=("prefix_matching",)),
    Probe(name="ov_copying", needs=()),
    Probe(name="icl", needs=("test_rows",), metrics=("icl",)),
    Probe(name="copying", needs=("paragraphs",)),
    Probe(name="memorisation", needs=("memorisation_rows",)),
    Probe(name="ablation", needs=("test_rows", "paragraphs")),
    Probe(name="classification", needs=("classification_sets",), checkpoint=False, metrics=("classification",)),
    Probe(name="regression", needs=("regression_rows",), vectors=True, metrics=("regression",)),
)}

PROBE_NAMES: tuple[ProbeName, ...] = tuple(name for name, p in PROBES.items() if p.checkpoint)  # type: ignore[misc]
"""Probes of ``run_probes``."""
VECTOR_PROBES: tuple[ProbeName, ...] = tuple(n for n in PROBE_NAMES if PROBES[n].vectors)
"""Probes of a vector model (in-context regression: ``probes.regression``); every other probe reads tokens."""
TOKEN_PROBES: tuple[ProbeName, ...] = tuple(n for n in PROBE_NAMES if not PROBES[n].vectors)
TRAINING_METRICS: tuple[str, ...] = tuple(metric for p in PROBES.values() for metric in p.metrics)
"""What ``train.probe_metrics`` may list (``repeatlab.train.config.PROBE_METRICS`` holds the same names)."""


def needs_of(config: ProbeConfig) -> frozenset[InputKind]:
    """The inputs of every probe ``config`` selects."""
    needs: set[InputKind] = {kind for name in config.probes for kind in PROBES[name].needs}
    if "ablation" in config.probes and not config.ablation_heads:
        needs.add("induction_tokens")  # the heads to ablate are the top induction heads
    return frozenset(needs)


def probes_of_metrics(metrics: Iterable[str]) -> tuple[ProbeName, ...]:
    """The probes that compute ``metrics`` (names of ``train.probe_metrics``), in registry order."""
    wanted = set(metrics)
    unknown = wanted - set(TRAINING_METRICS)
    if unknown:
        raise RepeatlabError(f"train.probe_metrics: unknown probe metric(s) {', '.join(sorted(unknown))}; valid ones "
                             f"are: {', '.join(TRAINING_METRICS)}")
    return tuple(name for name, p in PROBES.items() if wanted & set(p.metrics))  # type: ignore[misc]


__all__ = ["PROBES", "PROBE_NAMES", "TOKEN_PROBES", "START_TOKEN_INPUTS", "TRAINING_METRICS", "VECTOR_PROBES",
           "InputKind", "Probe", "ProbeName", "needs_of", "probes_of_metrics"]
