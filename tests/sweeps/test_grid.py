"""Grid specs: presets load, unknown keys and bad values are errors naming the field, expansion invariants."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from repeatlab.config import ConfigError, from_dict, parse_overrides, to_dict
from repeatlab.data.prepare import PrepareConfig
from repeatlab.io import atomic_write_text
from repeatlab.layout import GRID_FILE
from repeatlab.models.sizes import model_config
from repeatlab.probes.config import ProbeConfig
from repeatlab.probes.registry import VECTOR_PROBES
from repeatlab.sweeps.grid import (
    GridConfig,
    ResourcesConfig,
    expand_grid,
    grid_to_toml,
    load_grid,
    preset_names,
)
from repeatlab.train.config import OptimConfig, RunConfig
from repeatlab.train.plan import plan_batches

from .conftest import tiny_grid


def test_the_three_presets_are_shipped() -> None:
    assert {"cpu-tiny", "gpu-small", "paper"} <= set(preset_names())


@pytest.mark.parametrize("name", preset_names())
def test_each_preset_loads_expands_and_round_trips(name: str, tmp_path: Path) -> None:
    """litgpt's config-hub test: every shipped preset validates, survives save/load as a sweep writes it, and
    builds a valid config for every one of its runs."""
    grid = load_grid(name)
    specs = expand_grid(grid)
    assert grid.name == name
    assert len({s.run_id for s in specs}) == len(specs)
    for size in grid.sizes:  # a control at every size and seed
        for seed in grid.seeds:
            assert any(s.point.kind == "control" and s.point.model == size and s.point.seed == seed for s in specs)
    assert from_dict(GridConfig, tomllib.loads(grid_to_toml(grid))) == grid
    atomic_write_text(tmp_path / GRID_FILE, grid_to_toml(grid))  # as plan_sweep saves it
    assert load_grid(tmp_path / GRID_FILE) == grid
    assert [s.run_id for s in expand_grid(load_grid(tmp_path / GRID_FILE))] == [s.run_id for s in specs]
    for spec in specs:  # every run's mixture, model and batch plan is valid
        mixture = spec.point.mixture_spec()
        run = spec.run_config(tmp_path / "data", tmp_path / "mixture")
        assert from_dict(RunConfig, to_dict(run)) == run
        model_config(run.model, vocab_size=spec.data.vocab_size, context=spec.data.context)
        plan_batches(run.train, context=spec.data.context, world_size=1,
                     n_sequences=mixture.total_tokens // spec.data.context)


def test_presets_by_name_match_their_intent() -> None:
    tiny, paper = load_grid("cpu-tiny"), load_grid("paper")
    assert tiny.data.source == "builtin" and all(size.startswith("tiny-") for size in tiny.sizes)
    assert tiny.probes is not None and tiny.train.device in ("auto", "cpu")
    assert paper.total_tokens == 100_000_000_000 and len(paper.sizes) == 10
    assert load_grid("gpu-small").resources.gpus_per_run > 0
    repro = load_grid("cpu-repro")
    assert repro.repeated_fractions == (0.1,) and len(repro.seeds) >= 3 and repro.unique_controls
    assert repro.data.source == "python-stdlib" and repro.data.tokenizer == "byte" and len(repro.sizes) >= 4


def test_repeated_grid_expansion(corpus: Path) -> None:
    grid = tiny_grid(corpus, repeated_fractions=(0.1, 0.5), repeated_epochs=(2, 4, 8), seeds=(0, 1))
    specs = expand_grid(grid)
    assert len(specs) == 2 * 2 * (1 + 2 * 3)
    controls = [s for s in specs if s.point.kind == "control"]
    assert len(controls) == 2 * 2 and all(s.point.repeated_fraction == 0 for s in controls)
    assert {s.point.total_tokens for s in specs} == {grid.total_tokens}
    assert all(s.train.seed == s.point.seed and s.point.mixture_spec().seed == s.point.seed for s in specs)
    assert specs[0].point.kind == "control"  # controls are dispatched first


def test_unique_controls_train_on_the_unique_tokens_of_each_fraction_alone(corpus: Path) -> None:
    grid = tiny_grid(corpus, repeated_fractions=(0.25, 0.5), repeated_epochs=(2, 4), seeds=(0, 1), unique_controls=True)
    specs = expand_grid(grid)
    assert len(specs) == 2 * 2 * (1 + 2 + 2 * 2)  # sizes x seeds x (control + one per f + f x E)
    T = grid.total_tokens
    for size in grid.sizes:
        for seed in grid.seeds:
            controls = [s.point for s in specs if s.point.kind == "control" and s.point.model == size
                        and s.point.seed == seed]
            assert sorted(c.total_tokens for c in controls) == sorted([T, round(0.75 * T), round(0.5 * T)])
            assert all(c.repeated_fraction == 0 and c.mixture_spec().kind == "control" for c in controls)
    with pytest.raises(ValueError, match="unique_controls is for kind = 'repeated'"):
        tiny_grid(corpus, kind="data_constrained", total_tokens=None, repeated_fractions=(), unique_tokens=(64,),
                  repeated_epochs=(2,), unique_controls=True)


def test_data_constrained_expansion_adds_a_control_per_token_count(corpus: Path) -> None:
    grid = tiny_grid(corpus, kind="data_constrained", total_tokens=None, repeated_fractions=(),
                     unique_tokens=(160, 320), repeated_epochs=(1, 4))
    specs = expand_grid(grid)
    for size in grid.sizes:
        points = [s.point for s in specs if s.point.model == size]
        assert sorted(p.total_tokens for p in points if p.kind == "control") == [160, 320, 640, 1280]
        constrained = [p for p in points if p.kind == "data_constrained"]
        assert sorted((p.unique_tokens, p.repeated_epochs) for p in constrained) == [(160, 4), (320, 4)]
        assert all(p.total_tokens == p.unique_tokens * p.repeated_epochs for p in constrained)
        assert all(p.mixture_spec().kind == "data_constrained" for p in constrained)


def test_run_ids_are_stable_and_change_only_with_results_relevant_settings(corpus: Path) -> None:
    grid = tiny_grid(corpus)
    ids = [s.run_id for s in expand_grid(grid)]
    assert ids == [s.run_id for s in expand_grid(tiny_grid(corpus))]
    more_workers = replace(grid, resources=ResourcesConfig(local_workers=7, cpus_per_run=3.0))
    assert [s.run_id for s in expand_grid(more_workers)] == ids
    other_lr = replace(grid, optim=OptimConfig(lr=1e-2, warmup_steps=2))
    assert not set(ids) & {s.run_id for s in expand_grid(other_lr)}


def test_size_overrides_apply_to_their_size_only(corpus: Path) -> None:
    grid = tiny_grid(corpus, size_overrides={"tiny-1l": {"optim": {"lr": 1e-2}, "train.batch_tokens": 64}})
    for spec in expand_grid(grid):
        overridden = spec.point.model == "tiny-1l"
        assert spec.optim.lr == (1e-2 if overridden else 3e-3)
        assert spec.train.batch_tokens == (64 if overridden else 128)


@pytest.mark.parametrize(
    ("toml", "names"),
    [
        ('name = "x"\nsizes = ["tiny-1l"]\ntotal_tokens = 100\nrepeated_fractions = [0.5]\nrepeated_epochs = [2]\n'
         "colour = 3\n", "colour"),
        ('name = "x"\nsizes = ["tiny-1l"]\ntotal_tokens = 100\nrepeated_fractions = [0.5]\nrepeated_epochs = [2]\n'
         "[train]\nbatch_tokenz = 8\n", "train.batch_tokenz"),
        ('name = "x"\nsizes = ["tiny-1l"]\ntotal_tokens = 100\nrepeated_fractions = [0.5]\nrepeated_epochs = [2]\n'
         "[probes]\nprobez = []\n", "probes.probez"),
    ],
)
def test_unknown_keys_are_errors_naming_the_key(tmp_path: Path, toml: str, names: str) -> None:
    path = tmp_path / "grid.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=names.replace(".", r"\.")):
        load_grid(path)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"sizes": ("tiny-9l",)}, "grid.sizes"),
        ({"sizes": ()}, "grid.sizes"),
        ({"repeated_fractions": (1.5,)}, "grid.repeated_fractions"),
        ({"repeated_fractions": (0.5, 0.5)}, "grid.repeated_fractions"),
        ({"repeated_epochs": (0,)}, "grid.repeated_epochs"),
        ({"total_tokens": None}, "grid.total_tokens"),
        ({"unique_tokens": (100,)}, "grid.unique_tokens"),
        ({"seeds": (-1,)}, "grid.seeds"),
        ({"name": "has space"}, "grid.name"),
        ({"kind": "data_constrained", "total_tokens": None, "repeated_fractions": ()}, "grid.unique_tokens"),
        ({"size_overrides": {"hern-2l": {"optim": {"lr": 1.0}}}}, "size_overrides"),
        ({"size_overrides": {"tiny-1l": {"optim": {"lrr": 1.0}}}}, "lrr"),
        ({"size_overrides": {"tiny-1l": {"model": "x"}}}, "size_overrides.tiny-1l"),
    ],
)
def test_bad_values_are_errors_naming_the_field(corpus: Path, changes: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        tiny_grid(corpus, **changes)


def test_train_seed_must_come_from_seeds(corpus: Path) -> None:
    grid = tiny_grid(corpus)
    with pytest.raises(ValueError, match="grid.seeds"):
        replace(grid, train=replace(grid.train, seed=3))


def test_overrides_from_the_command_line(tmp_path: Path) -> None:
    updates = parse_overrides(["seeds=[0, 1]", "data.source=corpus.txt", "optim.lr=0.002", "name = other"])
    assert updates == {"seeds": [0, 1], "data.source": "corpus.txt", "optim.lr": 0.002, "name": "other"}
    grid = load_grid("cpu-tiny", overrides=updates)
    assert grid.seeds == (0, 1) and grid.optim.lr == 0.002 and grid.name == "other"
    assert grid.data.source == str(Path("corpus.txt").resolve())  # made absolute
    with pytest.raises(ConfigError, match="colour"):
        load_grid("cpu-tiny", overrides={"train.colour": 1})
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_overrides(["no-equals-sign"])


def test_unknown_grid_names_list_the_presets() -> None:
    with pytest.raises(FileNotFoundError, match="cpu-tiny"):
        load_grid("no-such-grid")


def test_a_regression_grid_checks_the_probes_a_vector_model_runs() -> None:
    """An empty ``[probes]`` table means every vector probe on regression data (as ``run_probes`` reads it), so
    the grid's length check must not refuse the token probes' 101-token sequences there; on token data it does."""
    grid = GridConfig(name="reg", sizes=("lsa-1l",), total_tokens=11 * 64, repeated_fractions=(0.1,),
                      repeated_epochs=(2,), data=PrepareConfig(source="regression", context=11), probes=ProbeConfig())
    assert grid.probes.for_inputs(vectors=True).probes == VECTOR_PROBES
    with pytest.raises(ValueError, match="the induction probe needs sequences of 101 tokens"):
        GridConfig(name="cls", sizes=("attn-only-min-2l",), total_tokens=17 * 64, repeated_fractions=(0.1,),
                   repeated_epochs=(2,), data=PrepareConfig(source="classification", context=17),
                   probes=ProbeConfig())


def test_fields_added_later_keep_the_run_ids_of_existing_sweeps() -> None:
    """ClassificationTask.n_exemplars, RunPoint.train_variant and GridConfig.train_variants came after these runs
    existed: at their defaults they leave the ids alone (the first two testbed-phase runs, read off a sweep of the
    preset run before they were added), so finished sweeps are reused rather than retrained."""
    run_ids = [spec.run_id for spec in expand_grid(load_grid("testbed-phase"))]
    assert run_ids[:2] == ["df10f9a46cb0", "c0b2da24506c"]
