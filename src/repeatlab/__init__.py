"""repeatlab: study what repeated data does to language models.

The public API lives in the subpackages: ``repeatlab.data`` (corpora, tokenizers, repetition
mixtures), ``repeatlab.models``, ``repeatlab.train``, ``repeatlab.probes``, ``repeatlab.laws``,
``repeatlab.sweeps``, ``repeatlab.report`` and ``repeatlab.audit``. The ``repeatlab`` command is
a thin layer over them.
"""

__version__ = "0.1.0"
