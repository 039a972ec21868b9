"""Run the per-document stage (digests, MinHash, tokens) as Ray tasks, one per batch.

The driver streams documents from the source and keeps a bounded number of batches in flight
(two per CPU in the cluster), so memory stays flat however large the corpus; results come back in
corpus order, which makes the output identical to the local backend's. Grouping the digests and
banding the signatures happen on the driver afterwards (16 bytes and ``4 * num_perm`` bytes per
document). The span stage is not distributed: it needs the whole token stream in one place.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

from repeatlab.audit.config import AuditConfig
from repeatlab.audit.scan import BatchScan, scan_batch
from repeatlab.errors import RepeatlabError


def ray_scan(batches: Iterable[list[str]], config: AuditConfig) -> Iterator[BatchScan]:
    """``scan_batch`` over ``batches`` on Ray, in order; starts (and stops) a local Ray if none is running."""
    try:
        import ray
    except ImportError:
        raise RepeatlabError("backend 'ray' needs the ray package: pip install 'repeatlab[ray]'") from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=config.ray_address, include_dashboard=False, log_to_driver=False)
    try:
        remote = ray.remote(scan_batch)
        window = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
        config_ref = ray.put(config)
        pending: deque[Any] = deque()
        for batch in batches:
            pending.append(remote.remote(batch, config_ref))
            if len(pending) >= window:
                yield ray.get(pending.popleft())
        while pending:
            yield ray.get(pending.popleft())
    finally:
        if started:
            ray.shutdown()
