"""The data axis of a grid (``[data_variants.<name>]``): expansion, one-line errors, and a real sweep over two
variants that prepares each dataset once, keeps their mixtures apart, resumes as a no-op and refuses a changed
variant."""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pytest

from repeatlab.config import from_dict
from repeatlab.data.classification import ClassificationTask
from repeatlab.data.prepare import PrepareConfig
from repeatlab.errors import RepeatlabError
from repeatlab.sweeps.driver import run_sweep
from repeatlab.sweeps.grid import GridConfig, ResourcesConfig, expand_grid, grid_to_toml, load_grid
from repeatlab.sweeps.variants import task_type
from repeatlab.train.config import OptimConfig, TrainConfig

TASK = ClassificationTask(n_classes=24, n_labels=4, n_pairs=4, relabel_fraction=0.0, n_train_sequences=600,
                          n_test_sequences=64, n_eval_sequences=16)
BATCH = 8
VARIANTS = {"K24-B1": {"burstiness": 1}, "K48-B3": {"n_classes": 48, "burstiness": 3}}


def variant_grid(**changes: Any) -> GridConfig:
    """A control-only grid (data-constrained at E = 1) of 12 steps over ``VARIANTS``."""
    grid = GridConfig(
        name="variants-test", kind="data_constrained", sizes=("attn-only-min-2l",),
        unique_tokens=(12 * BATCH * TASK.context,), repeated_epochs=(1,), seeds=(0,),
        data=PrepareConfig(source="classification", context=TASK.context, classification=TASK),
        data_variants=VARIANTS,
        optim=OptimConfig(lr=3e-3, warmup_steps=2),
        train=TrainConfig(batch_tokens=BATCH * TASK.context, n_log_evals=0, eval_every=6, eval_test_sequences=8,
                          eval_repeated_sequences=0, checkpoint_every=6, device="cpu",
                          probe_metrics=("classification",)),
        probes=None, resources=ResourcesConfig(local_workers=1),
    )
    return replace(grid, **changes)


def test_every_point_runs_once_per_variant_on_that_variants_task() -> None:
    grid = variant_grid(seeds=(0, 1))
    specs = expand_grid(grid)
    assert len(specs) == 2 * 2 and len({s.run_id for s in specs}) == 4
    for spec in specs:
        variant = spec.point.data_variant
        assert variant in VARIANTS and spec.point.label().endswith(f"data={variant}")
        task = spec.data.classification
        assert task is not None and task == replace(TASK, **VARIANTS[variant])
    assert from_dict(GridConfig, tomllib.loads(grid_to_toml(grid))) == grid
    plain = expand_grid(variant_grid(data_variants={}))
    assert [s.point.data_variant for s in plain] == [None] and plain[0].data == grid.data


def test_task_sources_name_their_parameters_and_corpora_have_none() -> None:
    assert task_type("classification") is ClassificationTask
    assert task_type("builtin") is None and task_type("corpus.txt") is None and task_type("context") is None


@pytest.mark.parametrize(("variants", "data", "message"), [
    ({"v": {"n_clases": 64}}, None, "unknown config key grid.data_variants.v.n_clases for ClassificationTask; valid "
                                    "keys are: burstiness"),
    ({"v": {"burstiness": 9}}, None, r"grid.data_variants.v: ClassificationTask.burstiness must be an integer in "
                                     r"\[1, n_pairs - 1 = 3\], got 9"),
    ({"v": {"n_pairs": 6}}, None, "grid.data_variants.v: context must be 13 for the in-context classification task"),
    ({"v": {"n_classes": "many"}}, None, "grid.data_variants.v.n_classes: expected int, got 'many'"),
    ({"a": {"burstiness": 2}, "b": {}}, None, "grid.data_variants: a and b give the same data"),
    ({"a/b": {"burstiness": 1}}, None, "grid.data_variants: 'a/b' must be letters, digits and _.-"),
    ({"v": 3}, None, "grid.data_variants.v must be a table of task fields, got 3"),
    ({"v": {"burstiness": 1}}, PrepareConfig(source="builtin"),
     "grid.data_variants.v: data variants replace fields of a synthetic task, but data.source = 'builtin' is a "
     "corpus"),
])
def test_bad_variants_are_refused_in_one_line(variants: dict[str, Any], data: PrepareConfig | None,
                                              message: str) -> None:
    with pytest.raises(RepeatlabError, match=message) as caught:
        variant_grid(data_variants=variants, **({"data": data} if data is not None else {}))
    assert "\n" not in str(caught.value)


def test_a_variant_table_in_a_grid_file_is_checked_when_it_loads(tmp_path: Path) -> None:
    text = grid_to_toml(variant_grid()).replace("[data_variants.K48-B3]\n", "[data_variants.K48-B3]\nalpha = 1\n")
    (tmp_path / "grid.toml").write_text(text, encoding="utf-8")
    with pytest.raises(RepeatlabError, match="unknown config key grid.data_variants.K48-B3.alpha"):
        load_grid(tmp_path / "grid.toml")


def test_a_sweep_over_variants_prepares_each_once_and_refuses_a_changed_one(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    result = run_sweep(variant_grid(), out, workers=1)
    assert result.n_failed == 0 and len(result.outcomes) == 2
    assert not (out / "data").exists() and not (out / "mixtures").exists()
    for variant, updates in VARIANTS.items():
        meta = json.loads((out / f"data-{variant}" / "meta.json").read_text())
        assert meta["classification"] == {**asdict(TASK), **updates}
        assert len(list((out / f"mixtures-{variant}").iterdir())) == 1
    rows = result.results.set_index("data_variant")
    assert sorted(rows.index) == sorted(VARIANTS) and (rows["status"] == "done").all()
    for variant, run_id in rows["run_id"].items():
        config = json.loads((out / "runs" / run_id / "config.json").read_text())
        assert Path(config["dataset"]) == (out / f"data-{variant}").resolve()
        assert Path(config["mixture"]).parent == (out / f"mixtures-{variant}").resolve()
    again = run_sweep(variant_grid(), out, workers=1)
    assert again.outcomes == [] and len(again.plan.done) == 2
    changed = {**VARIANTS, "K48-B3": {"n_classes": 40, "burstiness": 3}}
    with pytest.raises(RepeatlabError, match=r"data-K48-B3 was prepared with data.classification.n_classes = 48 "
                                             r"but the grid's data variant K48-B3 asks for 40"):
        run_sweep(variant_grid(data_variants=changed), out, workers=1)


def test_the_testbed_phase_preset_is_its_documented_protocol() -> None:
    grid = load_grid("testbed-phase")
    specs = expand_grid(grid)
    cells = {(s.data.classification_task.n_classes, s.data.classification_task.burstiness) for s in specs}
    assert cells == {(128, 1), (128, 6), (1024, 1), (1024, 6)} and len(specs) == 4 * len(grid.seeds) == 16
    assert all(s.point.kind == "control" and s.point.model == "attn-only-min-2l" for s in specs)
    task = grid.data.classification_task
    assert task.relabel_fraction == 0.0 and task.zipf_exponent == 0.0 and grid.optim.lr == 3e-3
    assert grid.train.batch_tokens == 64 * 17 and specs[0].point.total_tokens == 2_000 * 64 * 17
    assert "classification" in grid.train.probe_metrics and grid.train.eval_every == 50
