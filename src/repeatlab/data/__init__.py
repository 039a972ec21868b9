"""Corpora, tokenizers, prepared datasets and exact repetition mixtures.

The steps of ``repeatlab data``: ``load_corpus`` reads documents, ``prepare_dataset`` splits them by document,
tokenizes them and writes the token memmaps a ``PreparedDataset`` reads, and ``make_mixture`` writes the seeded
order in which training visits the pool, with its repeated subset (``MixtureSpec``: f, E or U); ``batch_at_step``
and ``decode_batch`` show what the trainer sees at a step. The trainer's batch loader, ``repeatlab.data.loader``,
needs torch and is not imported here (``batch_at_step`` imports it when called), so that the audit and the CLI's
data commands stay light.
"""

from repeatlab.data.corpus import Corpus, CorpusError, iter_documents, load_corpus
from repeatlab.data.inspection import BatchRow, batch_at_step, decode_batch
from repeatlab.data.mixture import Mixture, MixtureSpec, build_mixture, load_mixture, make_mixture, write_mixture
from repeatlab.data.prepare import PrepareConfig, prepare_dataset
from repeatlab.data.prepared import PreparedDataset, load_prepared
from repeatlab.data.tokens import TextTokenizer, byte_tokenizer, load_tokenizer, train_bpe

__all__ = [
    "BatchRow",
    "Corpus",
    "CorpusError",
    "Mixture",
    "MixtureSpec",
    "PrepareConfig",
    "PreparedDataset",
    "TextTokenizer",
    "batch_at_step",
    "build_mixture",
    "byte_tokenizer",
    "decode_batch",
    "iter_documents",
    "load_corpus",
    "load_mixture",
    "load_prepared",
    "load_tokenizer",
    "make_mixture",
    "prepare_dataset",
    "train_bpe",
    "write_mixture",
]
