"""Samples of the repeated subset as text, decoded from the sweep's prepared data.

A run's ``config.json`` names its prepared dataset and mixture; the mixture's ``repeated_ids.npy`` says which
training-pool sequences were repeated, and the dataset's tokenizer decodes them. The text is corpus text: it is
returned raw and must only ever reach the page through the template's autoescaping.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from repeatlab.data.mixture import load_mixture
from repeatlab.data.prepared import load_prepared


@dataclass(frozen=True, kw_only=True)
class Sample:
    sequence_id: int
    text: str


def repeated_samples(dataset_dir: Path, mixture_dir: Path, *, n: int, max_chars: int) -> list[Sample]:
    """Up to ``n`` repeated sequences, evenly spread over the subset, each cut to ``max_chars`` characters.

    Raises ``FileNotFoundError``/``ValueError`` when the dataset or mixture is missing or corrupt.
    """
    dataset = load_prepared(dataset_dir)
    mixture = load_mixture(mixture_dir, dataset)
    ids = np.asarray(mixture.repeated_ids, dtype=np.int64)
    if len(ids) == 0 or n == 0:
        return []
    picks = ids[np.unique(np.linspace(0, len(ids) - 1, min(n, len(ids))).round().astype(int))]
    sequences = dataset.sequences("train")
    out = []
    for sequence_id in picks:
        text = dataset.tokenizer.decode(int(t) for t in sequences[int(sequence_id)])
        out.append(Sample(sequence_id=int(sequence_id), text=text if len(text) <= max_chars else text[:max_chars] + "…"))
    return out
