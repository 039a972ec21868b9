"""Reference span counter: a suffix array and its LCP array (pydivsufsort's divsufsort and Kasai).

Suffixes adjacent in suffix-array order whose common prefix is at least N tokens start with the same
N-token window, so cutting the suffix array wherever the LCP drops below N groups equal windows, and
a group's size is how often its window occurs. Windows that leave their document are excluded from
the groups' sizes but still pass the LCP chain on, because equality of the first N tokens is
transitive whatever the window's position.

Exact, but it holds the whole corpus at once: about 13 bytes per token for byte corpora (int32 suffix
and LCP arrays, Kasai's rank array, the output) and more for wider ids, which libdivsufsort sorts as
big-endian bytes. Use it to check ``spans_hash`` or on corpora that fit comfortably in memory.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from pydivsufsort import divsufsort, kasai

from repeatlab.audit.stream import TokenStream, window_mask


def count_windows_suffix_array(stream: TokenStream, span: int) -> NDArray[np.uint32]:
    """Per position, how many times the ``span``-token window starting there occurs (0: leaves its document)."""
    n = stream.n_tokens
    counts = np.zeros(n, np.uint32)
    if n < span:
        return counts
    text = np.array(stream.tokens, copy=True)  # libdivsufsort needs a writable, contiguous buffer
    suffixes = divsufsort(text).astype(np.int64)
    lcp = kasai(text, suffixes)  # lcp[k] = common prefix of suffixes[k] and suffixes[k + 1]
    group = np.zeros(n, np.int64)
    np.cumsum(lcp[:-1] < span, out=group[1:])
    valid = window_mask(stream.doc_offsets, 0, n, span)[suffixes]
    sizes = np.bincount(group[valid], minlength=int(group[-1]) + 1)
    counts[suffixes[valid]] = sizes[group[valid]]
    return counts
