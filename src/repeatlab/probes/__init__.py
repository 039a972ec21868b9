"""Interpretability probes of a checkpoint: induction, prefix-matching, previous- and duplicate-token
heads, OV copying, in-context learning, copying, memorisation and head ablation.

``run_probes(model, dataset, mixture, ProbeConfig(...))`` runs any subset and returns ``ProbeResults``;
each probe is also a plain function over a model and token tensors (see the modules).
"""

from repeatlab.probes.ablation import AblationResult, ablated, head_ablation, mean_head_outputs
from repeatlab.probes.config import ProbeConfig
from repeatlab.probes.heads import Head, QueryAverage, attention_scores, ov_copying_scores, top_heads
from repeatlab.probes.icl import (
    CopyingResult,
    IclResult,
    choose_paragraphs,
    copying_eval,
    icl_positions,
    icl_score,
    token_losses,
)
from repeatlab.probes.inputs import ProbeInputs, build_inputs
from repeatlab.probes.memorisation import MemorisationResult, greedy_matches, memorisation
from repeatlab.probes.patterns import PATTERNS
from repeatlab.probes.registry import PROBE_NAMES, PROBES, Probe, ProbeName
from repeatlab.probes.sequences import candidate_tokens, repeated_random_tokens, token_frequencies
from repeatlab.probes.suite import ProbeResults, run_probes

__all__ = [
    "PATTERNS",
    "PROBES",
    "PROBE_NAMES",
    "AblationResult",
    "CopyingResult",
    "Head",
    "IclResult",
    "MemorisationResult",
    "Probe",
    "ProbeConfig",
    "ProbeInputs",
    "ProbeName",
    "ProbeResults",
    "QueryAverage",
    "ablated",
    "attention_scores",
    "build_inputs",
    "candidate_tokens",
    "choose_paragraphs",
    "copying_eval",
    "greedy_matches",
    "head_ablation",
    "icl_positions",
    "icl_score",
    "mean_head_outputs",
    "memorisation",
    "ov_copying_scores",
    "repeated_random_tokens",
    "run_probes",
    "token_frequencies",
    "token_losses",
    "top_heads",
]
