"""The Ray backend: per-document stages sharded over a real local Ray give the local result exactly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from repeatlab.audit import AuditConfig, audit_corpus
from repeatlab.audit.ray_scan import ray_scan
from repeatlab.audit.scan import merge_batches, scan_batch

from .conftest import SPAN, Planted

ray = pytest.importorskip("ray", reason="ray is an optional extra (repeatlab[ray])")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.slow
def test_ray_backend_equals_local(local_ray: None, planted: Planted, planted_jsonl: Path) -> None:
    config = AuditConfig(min_span_tokens=SPAN)
    batches = [planted.documents[i : i + 9] for i in range(0, len(planted.documents), 9)]  # several shards
    sharded = merge_batches(list(ray_scan(iter(batches), config)), config.near_dup.num_perm)
    local = merge_batches([scan_batch(b, config) for b in batches], config.near_dup.num_perm)
    np.testing.assert_array_equal(sharded.digests, local.digests)
    np.testing.assert_array_equal(sharded.signatures, local.signatures)
    np.testing.assert_array_equal(sharded.stream.tokens, local.stream.tokens)
    np.testing.assert_array_equal(sharded.stream.doc_offsets, local.stream.doc_offsets)

    on_ray = audit_corpus(planted_jsonl, AuditConfig(min_span_tokens=SPAN, backend="ray")).to_dict()
    here = audit_corpus(planted_jsonl, config).to_dict()
    for data in (on_ray, here):
        data.pop("timings_s"), data.pop("peak_rss_mb"), data["config"].pop("backend")
    assert on_ray == here
    assert ray.is_initialized()  # the audit joined the running Ray and left it running
