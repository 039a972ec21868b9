"""Synthetic sweeps for the report tests (see ``synthetic.py``), built once per session: they are read-only."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

HERE = Path(__file__).parent


def _load(name: str, path: Path) -> ModuleType:
    # Tests run with --import-mode=importlib, so helpers beside them are loaded by path.
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


synthetic = _load("repeatlab_report_synthetic", HERE / "synthetic.py")


@pytest.fixture(scope="session")
def synth() -> ModuleType:
    return synthetic


@pytest.fixture(scope="session")
def corpus_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A byte-level prepared dataset whose every document contains ``PLANTED`` markup, and a repeated mixture."""
    documents = [f"Document {i}: a line about foxes. {synthetic.PLANTED} More words follow here, and {i * 7}."
                 for i in range(60)]
    return synthetic.write_corpus_data(tmp_path_factory.mktemp("corpus"), documents)


@pytest.fixture(scope="session")
def full_sweep(tmp_path_factory: pytest.TempPathFactory, corpus_data: tuple[Path, Path]) -> Path:
    """Four sizes, two fractions, four repeat counts, data-constrained runs, one failed and one pending run."""
    data_dir, mixture_dir = corpus_data
    spec = synthetic.SweepSpec(data_constrained_unique=(100_000, 500_000), data_dir=data_dir, mixture_dir=mixture_dir)
    return synthetic.write_sweep(tmp_path_factory.mktemp("sweeps") / "full", spec)


@pytest.fixture(scope="session")
def full_report(full_sweep: Path):  # -> repeatlab.report.Report
    from repeatlab.report import build_report, load_sweep

    return build_report(load_sweep(full_sweep))


@pytest.fixture(scope="session")
def full_html(full_report, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from repeatlab.io import atomic_write_text
    from repeatlab.report import render_html

    out = tmp_path_factory.mktemp("html") / "report.html"
    atomic_write_text(out, render_html(full_report))
    return out
