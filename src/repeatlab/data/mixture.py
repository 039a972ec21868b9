"""Exact repetition mixtures: an *order* over training-pool sequences, with a record of repeats.

Nothing is copied: a mixture is ``order.npy`` (sequence ids into the training pool, in training
order) plus ``repeated_ids.npy`` and ``manifest.json``. Three kinds:

- control: ``T`` tokens of distinct sequences, each seen once.
- repeated (Hernandez et al. 2022): a repeated subset of ``f*T/E`` tokens seen ``E`` times each, plus
  ``(1-f)*T`` tokens of other sequences seen once, shuffled together with a seeded permutation.
- data-constrained (Muennighoff et al. 2023): ``U`` unique tokens repeated for ``R = T/U`` epochs,
  reshuffled every epoch; the last epoch may be partial.

Rounding: every token count is rounded to whole sequences of ``context`` tokens (round half to
even). The repeated subset is ``round(f*T/E / context)`` sequences, so its size is within half a
sequence of the request and the achieved repeated fraction is reported in the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from repeatlab.config import check_seed, to_dict
from repeatlab.data.prepared import PreparedDataset, load_prepared
from repeatlab.errors import RepeatlabError
from repeatlab.io import atomic_directory, atomic_save_npy, check_output_dir, output_lock, read_json, write_json

MixtureKind = Literal["control", "repeated", "data_constrained"]
MANIFEST_FILE = "manifest.json"


@dataclass(kw_only=True, frozen=True)
class MixtureSpec:
    """What to train on: total tokens and how they repeat."""

    total_tokens: int
    """Tokens seen in training (T), rounded to whole sequences."""
    repeated_fraction: float = 0.0
    """Share f of the T tokens that are repeats of the repeated subset (0 = control)."""
    repeated_epochs: int = 1
    """Times E each repeated-subset sequence is seen."""
    unique_tokens: int | None = None
    """Set for a data-constrained mixture: U unique tokens repeated for T/U epochs."""
    seed: int = 0
    """Seed of subset choice and order."""

    def __post_init__(self) -> None:
        if self.total_tokens <= 0:
            raise RepeatlabError(f"total_tokens must be positive, got {self.total_tokens}")
        if not 0.0 <= self.repeated_fraction < 1.0:
            raise RepeatlabError(f"repeated_fraction must be in [0, 1), got {self.repeated_fraction}")
        if self.repeated_epochs < 1:
            raise RepeatlabError(f"repeated_epochs must be at least 1, got {self.repeated_epochs}")
        check_seed("seed", self.seed)
        if self.unique_tokens is not None:
            if self.unique_tokens <= 0:
                raise RepeatlabError(f"unique_tokens must be positive, got {self.unique_tokens}")
            if self.repeated_fraction > 0:
                raise RepeatlabError("give either unique_tokens (data-constrained) or repeated_fraction, not both")
        if self.repeated_epochs != 1 and self.repeated_fraction == 0:
            # Only a repeated subset is seen E times: silently building a control or a data-constrained mixture
            # instead would hide the mistake until the results.
            raise RepeatlabError(
                f"repeated_epochs = {self.repeated_epochs} needs repeated_fraction > 0 (the share of tokens that are "
                f"repeats); give repeated_fraction, or leave repeated_epochs at 1"
                + (" (a data-constrained mixture's epochs are total_tokens / unique_tokens)"
                   if self.unique_tokens is not None else "")
            )

    @property
    def kind(self) -> MixtureKind:
        if self.unique_tokens is not None:
            return "data_constrained"
        return "repeated" if self.repeated_fraction > 0 else "control"


def unique_control_tokens(total_tokens: int, repeated_fraction: float) -> int:
    """Tokens of the control trained on a repeated run's unique part alone, ``round((1 - f) T)``: it separates
    the damage done by repeats from the cost of having fewer unique tokens."""
    return round((1 - repeated_fraction) * total_tokens)


@dataclass(frozen=True)
class Mixture:
    """A built mixture: the training order, the repeated subset, and its manifest."""

    order: np.ndarray
    """int64 sequence ids into the training pool, in training order."""
    repeated_ids: np.ndarray
    """Sorted int64 ids of the repeated subset (data-constrained: every id seen more than once)."""
    manifest: dict[str, Any]

    @property
    def context(self) -> int:
        return int(self.manifest["context"])

    @property
    def n_sequences(self) -> int:
        return len(self.order)


def build_mixture(dataset: PreparedDataset, spec: MixtureSpec) -> Mixture:
    """Choose sequences and their order; raise ``ValueError`` if the pool cannot supply them."""
    context, pool = dataset.context, dataset.n_sequences("train")
    n_total = _whole_sequences(spec.total_tokens, context, "total_tokens")
    rng = np.random.default_rng(spec.seed)
    if spec.kind == "data_constrained":
        n_unique = _whole_sequences(spec.unique_tokens or 0, context, "unique_tokens")
        _check_pool(n_unique, pool, context)
        ids = rng.choice(pool, size=n_unique, replace=False)
        n_epochs = -(-n_total // n_unique)
        order = np.concatenate([rng.permutation(ids) for _ in range(n_epochs)])[:n_total]
        subset = np.flatnonzero(np.bincount(order, minlength=pool) > 1)  # every id seen more than once
    else:
        n_repeated = 0
        if spec.kind == "repeated":
            subset_tokens = spec.repeated_fraction * n_total * context / spec.repeated_epochs
            n_repeated = int(round(subset_tokens / context))
            if n_repeated < 1:
                raise RepeatlabError(
                    f"the repeated subset (f*T/E = {subset_tokens:,.0f} tokens) is smaller than one sequence of "
                    f"{context} tokens; raise total_tokens or repeated_fraction, or lower repeated_epochs"
                )
        n_once = n_total - n_repeated * spec.repeated_epochs
        if n_once < 0:
            raise RepeatlabError(
                f"{n_repeated} repeated sequences x {spec.repeated_epochs} epochs exceed the {n_total} sequences "
                f"of the mixture after rounding; lower repeated_fraction or raise total_tokens"
            )
        _check_pool(n_repeated + n_once, pool, context)
        chosen = rng.choice(pool, size=n_repeated + n_once, replace=False)
        subset = chosen[:n_repeated]
        order = np.concatenate([np.repeat(subset, spec.repeated_epochs), chosen[n_repeated:]])
        rng.shuffle(order)
    order = order.astype(np.int64)
    repeated_ids = np.sort(subset).astype(np.int64)
    counts = np.bincount(order, minlength=pool)
    n_distinct = int((counts > 0).sum())
    manifest = {
        "kind": spec.kind,
        "spec": to_dict(spec),
        "context": context,
        "n_sequences": int(n_total),
        "total_tokens": int(n_total * context),
        "unique_tokens": n_distinct * context,
        "repeated_subset_tokens": int(len(repeated_ids) * context),
        "repeated_epochs": _epochs(spec, n_total, n_distinct),
        "repeated_fraction": float(counts[repeated_ids].sum() / n_total) if spec.kind == "repeated" else 0.0,
        "requested_repeated_fraction": spec.repeated_fraction,
        "seed": spec.seed,
        "dataset": str(Path(dataset.path).resolve()),
        "dataset_fingerprint": dataset_fingerprint(dataset),
    }
    return Mixture(order=order, repeated_ids=repeated_ids, manifest=manifest)


def _epochs(spec: MixtureSpec, n_total: int, n_distinct: int) -> float:
    if spec.kind == "data_constrained":
        return n_total / n_distinct
    return float(spec.repeated_epochs) if spec.kind == "repeated" else 1.0


def _whole_sequences(n_tokens: int, context: int, name: str) -> int:
    n = int(round(n_tokens / context))
    if n < 1:
        raise RepeatlabError(f"{name}={n_tokens:,} is less than one sequence of {context} tokens")
    return n


def _check_pool(n_needed: int, pool: int, context: int) -> None:
    if n_needed > pool:
        raise RepeatlabError(
            f"the mixture needs {n_needed:,} unique sequences ({n_needed * context:,} tokens) but the training pool "
            f"holds only {pool:,} ({pool * context:,} tokens); lower total_tokens, raise repeated_fraction, "
            f"or prepare a larger corpus"
        )


def dataset_fingerprint(dataset: PreparedDataset) -> str:
    """Identify a prepared dataset's contents, so a mixture cannot silently point at another one."""
    meta = dataset.meta
    return f"{meta['source']}|{meta['vocab_size']}|{meta['context']}|{meta['seed']}|{meta['train']['n_tokens']}"


def write_mixture(mixture: Mixture, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``manifest.json``, ``order.npy`` and ``repeated_ids.npy`` atomically as one directory."""
    with atomic_directory(out, overwrite=overwrite) as tmp:
        atomic_save_npy(tmp / "order.npy", mixture.order)
        atomic_save_npy(tmp / "repeated_ids.npy", mixture.repeated_ids)
        write_json(tmp / MANIFEST_FILE, mixture.manifest)
    return Path(out)


def make_mixture(dataset_dir: str | Path, spec: MixtureSpec, out: str | Path, *, overwrite: bool = False) -> Mixture:
    """Build a mixture over a prepared dataset and write it to ``out`` (checked and locked before the work)."""
    check_output_dir(out, exists_ok=overwrite)
    with output_lock(out):
        mixture = build_mixture(load_prepared(dataset_dir), spec)
        write_mixture(mixture, out, overwrite=overwrite)
    return mixture


def load_mixture(path: str | Path, dataset: PreparedDataset | None = None) -> Mixture:
    """Read a mixture directory, checking that its files agree with each other and, given the ``dataset`` it is
    trained on, that it fits that dataset (``check_fits``), so a damaged mixture is refused before any work."""
    path = Path(path)
    if not (path / MANIFEST_FILE).is_file():
        raise FileNotFoundError(f"{path} is not a mixture (no {MANIFEST_FILE}); create one with 'repeatlab data mix'")
    manifest = read_json(path / MANIFEST_FILE)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("n_sequences"), int):
        raise RepeatlabError(f"mixture {path} is corrupt: {MANIFEST_FILE} has no n_sequences; rebuild it with "
                         f"'repeatlab data mix'")
    ids = {}
    for name in ("order", "repeated_ids"):
        try:
            ids[name] = np.load(path / f"{name}.npy", allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise RepeatlabError(f"mixture {path} is corrupt ({name}.npy: {exc}); rebuild it with 'repeatlab data mix'") from None
        if ids[name].ndim != 1 or ids[name].dtype.kind not in "iu":
            raise RepeatlabError(f"mixture {path} is corrupt: {name}.npy holds {ids[name].dtype} of shape "
                             f"{ids[name].shape}, not a list of integer sequence ids; rebuild it with 'repeatlab data mix'")
    order, repeated_ids = (ids[name].astype(np.int64, copy=False) for name in ("order", "repeated_ids"))
    if len(order) != manifest["n_sequences"]:
        raise RepeatlabError(f"mixture {path} is corrupt: order.npy has {len(order)} ids, manifest says {manifest['n_sequences']}")
    mixture = Mixture(order=order, repeated_ids=repeated_ids, manifest=manifest)
    if dataset is not None:
        check_fits(mixture, dataset, where=f"mixture {path}")
    return mixture


def check_fits(mixture: Mixture, dataset: PreparedDataset, *, where: str = "the mixture") -> None:
    """Refuse a mixture built for another dataset: another context or fingerprint, or ids outside its pool."""
    if mixture.context != dataset.context:
        raise RepeatlabError(f"{where} has context {mixture.context}, the dataset {dataset.path} has {dataset.context}; "
                         f"rebuild the mixture with 'repeatlab data mix' over {dataset.path}")
    if mixture.manifest.get("dataset_fingerprint") != dataset_fingerprint(dataset):
        raise RepeatlabError(f"{where} was built for another prepared dataset ({mixture.manifest.get('dataset')}); "
                         f"rebuild it with 'repeatlab data mix' over {dataset.path}")
    pool = dataset.n_sequences("train")
    for name, ids in (("order", mixture.order), ("repeated_ids", mixture.repeated_ids)):
        if len(ids) and (ids.min() < 0 or ids.max() >= pool):
            raise RepeatlabError(f"{where} is corrupt: {name} holds sequence ids from {ids.min()} to {ids.max()}, outside "
                             f"the {pool:,} training sequences of {dataset.path}; rebuild it with 'repeatlab data mix'")
