"""``ProbeConfig``: which probes to run and every number they use, validated on construction."""

from __future__ import annotations

from dataclasses import dataclass, replace

from repeatlab.config import check_context, check_int, check_seed
from repeatlab.errors import RepeatlabError
from repeatlab.probes.ablation import ABLATION_MODES, AblationMode
from repeatlab.probes.registry import PROBES, TOKEN_PROBES, VECTOR_PROBES, ProbeName

MAX_PROBE_COUNT = 1_000_000
"""The most sequences (or heads) a probe setting may ask for: every one is held in memory at once."""


@dataclass(kw_only=True, frozen=True)
class ProbeConfig:
    """Settings of ``run_probes``; defaults follow the papers each probe comes from."""

    probes: tuple[ProbeName, ...] = TOKEN_PROBES
    """Probes to run (``probes.registry``). ``induction`` also yields the previous-token and duplicate-token scores.
    The default, every token probe, means ``VECTOR_PROBES`` for a vector model."""
    seed: int = 0
    """Seed of every random choice; each probe derives its own generator from it."""
    batch_size: int = 16
    """Full-context sequences per forward pass; shorter probe sequences are batched to as many tokens."""
    start_token: int | None = None
    """Token that starts the synthetic sequences; ``None`` uses the dataset's end-of-text token."""
    n_random_sequences: int = 64
    """Random-token sequences for the induction and prefix-matching scores. A curve during training draws
    ``train.probe_sequences`` (32) of the same stream, i.e. the first rows of these; with equal counts the last
    point of a curve is this score (the shipped CPU presets set both to 32). The default stays 64 because a
    sweep's run ids hash its ``ProbeConfig``."""
    induction_tokens: int = 50
    """Random tokens in each half of an induction sequence (start token + 2 x this)."""
    prefix_matching_tokens: int = 25
    """Random tokens per repeat of a prefix-matching sequence (Olsson et al.: 25)."""
    prefix_matching_repeats: int = 4
    """Repeats of a prefix-matching sequence (Olsson et al.: 4)."""
    exclude_token_fraction: float = 0.1
    """Share of the most and of the least frequent tokens never used in random sequences."""
    n_test_sequences: int = 64
    """Test-split contexts for the ICL score, the test loss and the mean of mean ablation (and the test sequences
    of the regression probe)."""
    icl_positions: tuple[int, int] | None = None
    """``(early, late)`` token positions of the ICL score; ``None``: (50, 500), scaled below context 512."""
    n_copies: int = 11
    """Copies of the paragraph in the copying eval (Hernandez et al.: 11)."""
    n_copy_paragraphs: int = 4
    """Test-split paragraphs the copying loss is averaged over."""
    copy_paragraph_tokens: int | None = None
    """Tokens per paragraph; ``None`` fills the context (``context // n_copies``)."""
    memorisation_prefix_tokens: int = 32
    """Prompt length of the memorisation probe (Pythia: 32)."""
    memorisation_continuation_tokens: int = 32
    """Tokens that must be reproduced (Pythia: 32)."""
    n_memorisation_sequences: int = 128
    """Sequences sampled from each group (repeated, seen once, test)."""
    ablation_heads: tuple[tuple[int, int], ...] = ()
    """Heads ``(layer, head)`` to ablate; empty ablates the ``ablation_top_k`` best induction heads."""
    ablation_top_k: int = 2
    """Number of top induction heads ablated when ``ablation_heads`` is empty."""
    ablation_mode: AblationMode = "mean"
    """``zero``: replace the heads' outputs with zeros; ``mean``: with their mean over the test contexts."""

    def __post_init__(self) -> None:
        if not self.probes:
            raise RepeatlabError("ProbeConfig.probes must name at least one probe")
        for name in self.probes:
            if name not in PROBES:
                raise RepeatlabError(
                    f"ProbeConfig.probes: unknown probe {name!r}; valid probes are: {', '.join(PROBES)}"
                )
        if len(set(self.probes)) != len(self.probes):
            raise RepeatlabError(f"ProbeConfig.probes lists a probe twice: {list(self.probes)}")
        check_seed("ProbeConfig.seed", self.seed)
        for name in ("induction_tokens", "prefix_matching_tokens", "memorisation_prefix_tokens",
                     "memorisation_continuation_tokens"):
            check_context(f"ProbeConfig.{name}", getattr(self, name))
        for name in ("batch_size", "n_random_sequences", "n_test_sequences", "n_copy_paragraphs",
                     "n_memorisation_sequences", "ablation_top_k"):
            check_int(f"ProbeConfig.{name}", getattr(self, name), 1, MAX_PROBE_COUNT,
                      reason="the probe holds that many sequences or heads in memory")
        if self.prefix_matching_repeats < 2:
            raise RepeatlabError(
                f"ProbeConfig.prefix_matching_repeats must be at least 2, got {self.prefix_matching_repeats!r}"
            )
        if self.n_copies < 2:
            raise RepeatlabError(f"ProbeConfig.n_copies must be at least 2, got {self.n_copies!r}")
        if self.start_token is not None and self.start_token < 0:
            raise RepeatlabError(f"ProbeConfig.start_token must be a token id >= 0, got {self.start_token!r}")
        if not 0.0 <= self.exclude_token_fraction < 0.5:
            raise RepeatlabError(
                f"ProbeConfig.exclude_token_fraction must be in [0, 0.5), got {self.exclude_token_fraction!r}"
            )
        if self.icl_positions is not None:
            early, late = self.icl_positions
            if not 1 <= early < late:
                raise RepeatlabError(
                    f"ProbeConfig.icl_positions must be (early, late), 1 <= early < late; got {self.icl_positions!r}"
                )
        if self.copy_paragraph_tokens is not None and self.copy_paragraph_tokens < 1:
            raise RepeatlabError(f"ProbeConfig.copy_paragraph_tokens must be positive, got {self.copy_paragraph_tokens!r}")
        for layer, head in self.ablation_heads:
            if layer < 0 or head < 0:
                raise RepeatlabError(f"ProbeConfig.ablation_heads: ({layer}, {head}) is not a valid (layer, head)")
        if self.ablation_mode not in ABLATION_MODES:
            raise RepeatlabError(
                f"ProbeConfig.ablation_mode must be one of {list(ABLATION_MODES)}, got {self.ablation_mode!r}"
            )

    def for_inputs(self, *, vectors: bool) -> ProbeConfig:
        """The probes that run on a model of this kind: the default (every token probe) means every vector probe
        for a vector model; anything else as given (``run_probes`` refuses a probe of the other kind)."""
        return replace(self, probes=VECTOR_PROBES) if vectors and self.probes == TOKEN_PROBES else self


__all__ = ["ProbeConfig"]
