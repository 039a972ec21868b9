"""Sweep grids: a typed TOML spec expanded into one ``RunSpec`` per training run.

Two kinds of grid:

- ``repeated`` (Hernandez et al. 2022): model sizes x repeated fractions f x repeated epochs E x seeds,
  every run seeing the same ``total_tokens``; an f = 0 control is added at every size and seed.
- ``data_constrained`` (Muennighoff et al. 2023): sizes x unique tokens U x epochs E x seeds, each run
  seeing ``U * E`` tokens; a control (every token unique) is added at every size, seed and token count,
  and E = 1 points are those controls.

Either kind can also range over datasets: ``[data_variants.<name>]`` tables (``repeatlab.sweeps.variants``) each
replace fields of a synthetic task, and every grid point is run once per variant on that variant's dataset; and
over training settings: ``[train_variants.<name>]`` tables each replace optimiser/training fields (an intervention
during training, say), and every point is run once per variant. An intervention of mode ``reference`` may name
``reference = "@<variant>"``: the run of the same point and seed trained with that variant (Singh et al. 2024's
clamping to what the same seed's baseline computes), which the sweep trains first.

A run is identified by the hash of its resolved ``RunSpec`` (grid point, data variant, data, optimiser, training
and probe settings; not where the sweep directory lives), which names its directory.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from repeatlab.config import ConfigError, added_later, check_int, config_hash, from_dict, override, to_dict
from repeatlab.errors import RepeatlabError
from repeatlab.io import read_utf8
from repeatlab.data.classification import TASK_KIND
from repeatlab.data.regression import TASK_KIND as REGRESSION_KIND
from repeatlab.data.corpus import is_named_source
from repeatlab.data.mixture import MixtureKind, MixtureSpec, unique_control_tokens
from repeatlab.data.prepare import PrepareConfig
from repeatlab.dynamics.finetune import FinetuneStage
from repeatlab.models.sizes import SIZES
from repeatlab.probes.config import ProbeConfig
from repeatlab.probes.suite import check_lengths
from repeatlab.sweeps import toml_out
from repeatlab.sweeps.variants import SIBLING, check_train_variants, sibling_references, variant_datasets, with_siblings
from repeatlab.train.config import OptimConfig, RunConfig, TrainConfig

GridKind = Literal["repeated", "data_constrained"]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


MAX_WORKERS = 1024
"""The most runs a sweep trains at once (local worker processes, or Ray tasks in flight)."""


def check_workers(where: str, value: object) -> None:
    """The one rule for a worker count: ``resources.local_workers``, and ``--workers`` of every command."""
    check_int(where, value, 1, MAX_WORKERS, reason="runs trained at once, each a process with its own model")


@dataclass(kw_only=True, frozen=True)
class ResourcesConfig:
    """What each run asks of a machine; none of it changes a run's result (so it is not in the run hash)."""

    cpus_per_run: float = 1.0
    """CPU cores per run: a Ray task's ``num_cpus``, and the torch threads of a run with either backend
    (at least 1; one thread is fastest for tiny models, more help larger models on CPU)."""
    gpus_per_run: float = 0.0
    """GPUs per run for Ray (a fraction lets several small runs share one GPU); 0 on CPU clusters."""
    local_workers: int = 1
    """Default ``--workers`` of the local backend (worker processes; on one GPU they share it)."""
    max_retries: int = 2
    """Restarts of a run whose worker process died (killed, out of memory); Python errors are not retried."""

    def __post_init__(self) -> None:
        if not self.cpus_per_run > 0:
            raise RepeatlabError(f"resources.cpus_per_run must be > 0, got {self.cpus_per_run!r}")
        if not self.gpus_per_run >= 0:
            raise RepeatlabError(f"resources.gpus_per_run must be >= 0, got {self.gpus_per_run!r}")
        check_workers("resources.local_workers", self.local_workers)
        if self.max_retries < 0:
            raise RepeatlabError(f"resources.max_retries must be >= 0, got {self.max_retries!r}")


@dataclass(kw_only=True, frozen=True)
class GridConfig:
    """A sweep grid (see the module docstring); loaded from TOML by ``load_grid``."""

    name: str
    """Name of the grid (letters, digits, ``_.-``); shown in status tables."""
    kind: GridKind = "repeated"
    """``repeated`` (f x E at fixed total tokens) or ``data_constrained`` (U x E)."""
    sizes: tuple[str, ...]
    """Model sizes from ``repeatlab.models.sizes.SIZES`` (``repeatlab models`` lists them)."""
    total_tokens: int | None = None
    """Tokens every run of a ``repeated`` grid sees (fixed, as in the paper); unset for ``data_constrained``."""
    repeated_fractions: tuple[float, ...] = ()
    """Repeated fractions f in (0, 1) of a ``repeated`` grid; the f = 0 controls are added automatically."""
    repeated_epochs: tuple[int, ...] = ()
    """Repeated epochs E: times each repeated-subset token is seen (``data_constrained``: passes over U)."""
    unique_tokens: tuple[int, ...] = ()
    """Unique tokens U of a ``data_constrained`` grid (each run sees U * E tokens)."""
    seeds: tuple[int, ...] = (0,)
    """Seeds; each grid point is run once per seed (the seed of the mixture and of the model init)."""
    unique_controls: bool = False
    """``repeated`` grids: also train, at every size, seed and f, a control on the (1 - f) T unique tokens alone
    (no repeats, fewer steps), so damage by repetition is told apart from having fewer unique tokens."""
    data: PrepareConfig = field(default_factory=PrepareConfig)
    """Corpus, tokenizer and context; prepared once into ``DIR/data`` and shared by every run (with
    ``data_variants``: the base every variant replaces fields of)."""
    data_variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The data axis: named replacements of the fields of ``data``'s synthetic task, e.g.
    ``[data_variants.K128-B6] n_classes = 128, burstiness = 6`` for ``source = "classification"``. Every grid point
    runs once per variant, on that variant's dataset (prepared once into ``DIR/data-<name>``); empty: one dataset."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimiser settings of every run."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Training settings of every run (``train.seed`` comes from ``seeds``)."""
    size_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per-size replacements of optimiser/training fields, e.g. ``[size_overrides.hern-16l.optim] lr = 2e-4``."""
    train_variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The training axis: named replacements of optimiser/training fields applied after ``size_overrides``, e.g.
    ``[train_variants.clamp-A.train] interventions = [...]``; every grid point runs once per variant (empty: once).
    An intervention's ``reference = "@<variant>"`` is the same point's run with that variant."""
    probes: ProbeConfig | None = None
    """Probes run on each finished model (a ``[probes]`` table, empty for the defaults); none when absent."""
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    """Per-run resources of the backends."""
    finetune: FinetuneStage | None = None
    """A ``[finetune]`` stage run after pre-training: every finished run fine-tuned, and each size trained from
    scratch on the same budget, for the ossification comparison. Not part of any run's id."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise RepeatlabError(f"grid.name must be letters, digits and _.- (not starting with those), got {self.name!r}")
        if self.kind not in ("repeated", "data_constrained"):
            raise RepeatlabError(f"grid.kind must be repeated or data_constrained, got {self.kind!r}")
        _check_list("sizes", self.sizes, lambda s: s in SIZES, f"a size name ({', '.join(SIZES)})")
        _check_list("repeated_epochs", self.repeated_epochs, lambda e: _is_int(e) and e >= 1, "an integer >= 1")
        _check_list("seeds", self.seeds, lambda s: _is_int(s) and s >= 0, "an integer >= 0")
        if self.kind == "repeated":
            if self.total_tokens is None or not _is_int(self.total_tokens) or self.total_tokens <= 0:
                raise RepeatlabError(f"grid.total_tokens must be a positive integer for a repeated grid, got {self.total_tokens!r}")
            _check_list("repeated_fractions", self.repeated_fractions, lambda f: 0 < f < 1, "a fraction in (0, 1)")
            if self.unique_tokens:
                raise RepeatlabError("grid.unique_tokens is for kind = 'data_constrained'; a repeated grid uses repeated_fractions")
        elif self.unique_controls:
            raise RepeatlabError("grid.unique_controls is for kind = 'repeated'; a data-constrained grid has its own controls")
        else:
            _check_list("unique_tokens", self.unique_tokens, lambda u: _is_int(u) and u > 0, "a positive integer")
            if self.total_tokens is not None:
                raise RepeatlabError("grid.total_tokens must be unset for kind = 'data_constrained' (each run sees U * E tokens)")
            if self.repeated_fractions:
                raise RepeatlabError("grid.repeated_fractions is for kind = 'repeated'; a data-constrained grid uses unique_tokens")
        for name in self.data_variants:
            if not _NAME.match(name):
                raise RepeatlabError(f"grid.data_variants: {name!r} must be letters, digits and _.- (it names a "
                                     "directory)")
        variant_datasets(self.data, self.data_variants)  # a bad variant is refused when the grid loads
        if self.train.seed != 0:
            raise RepeatlabError(f"grid.train.seed must be left unset (got {self.train.seed}); list the seeds in grid.seeds")
        for name in self.train_variants:
            if not _NAME.match(name):
                raise RepeatlabError(f"grid.train_variants: {name!r} must be letters, digits and _.- (it is part of "
                                     "run labels)")
        check_train_variants(self.train_variants, lambda name: _training_for(
            self.optim, self.train, self.train_variants[name], where=f"train_variants.{name}").train)
        for size, updates in self.size_overrides.items():
            if size not in self.sizes:
                raise RepeatlabError(f"grid.size_overrides: {size!r} is not one of the grid's sizes ({', '.join(self.sizes)})")
            _training_for(self.optim, self.train, updates, where=f"size_overrides.{size}")
        if self.probes is not None:
            # Every model of the sweep has the data's context: a probe too long for it would fail after training.
            try:
                check_lengths(self.probes.for_inputs(vectors=self.data.source == REGRESSION_KIND),
                              model_context=self.data.context, data_context=self.data.context)
            except ValueError as exc:
                raise RepeatlabError(f"grid.probes: {exc} (data.context = {self.data.context})") from None

    @property
    def datasets(self) -> dict[str | None, PrepareConfig]:
        """The data of each variant by name, or ``{None: data}`` for a grid with one dataset."""
        if not self.data_variants:
            return {None: self.data}
        return {name: data for name, data in variant_datasets(self.data, self.data_variants).items()}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_list(name: str, values: tuple[Any, ...], ok: Any, what: str) -> None:
    if not values:
        raise RepeatlabError(f"grid.{name} must list at least one value")
    for value in values:
        if not ok(value):
            raise RepeatlabError(f"grid.{name}: {value!r} is not {what}")
    if len(set(values)) != len(values):
        raise RepeatlabError(f"grid.{name} lists a value twice: {list(values)}")


def _flatten(updates: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in updates.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _training_for(optim: OptimConfig, train: TrainConfig, updates: dict[str, Any], *, where: str) -> RunConfig:
    """Base settings with dotted ``optim.*``/``train.*`` replacements, validated (errors name the key)."""
    flat = _flatten(updates)
    for key in flat:
        if key.split(".")[0] not in ("optim", "train"):
            raise ConfigError(f"grid.{where}: {key!r} is not an optim.* or train.* field")
        if key == "train.seed":
            raise ConfigError(f"grid.{where}: train.seed comes from grid.seeds")
    base = RunConfig(dataset="-", mixture="-", model="-", optim=optim, train=train)
    return override(base, flat) if flat else base


@dataclass(kw_only=True, frozen=True)
class RunPoint:
    """Where a run sits in the grid: its size, the repetition it trains on, and its seed."""

    kind: MixtureKind
    """``control``, ``repeated`` or ``data_constrained``."""
    model: str
    """Model size name."""
    total_tokens: int
    """Tokens seen in training (as asked; the mixture rounds to whole sequences)."""
    repeated_fraction: float = 0.0
    """Requested repeated fraction f (0 for controls and data-constrained runs)."""
    repeated_epochs: int = 1
    """E: times each repeated token is seen (data-constrained: passes over the unique tokens)."""
    unique_tokens: int | None = None
    """U of a data-constrained run; ``None`` otherwise."""
    seed: int = 0
    """Seed of the mixture and of the model initialisation."""
    data_variant: str | None = added_later(None)
    """Name of the data variant the run trains on (``GridConfig.data_variants``); ``None`` for a grid with one
    dataset."""
    train_variant: str | None = added_later(None)
    """Name of the training variant (``GridConfig.train_variants``); ``None`` for a grid without one."""

    def mixture_spec(self) -> MixtureSpec:
        return MixtureSpec(
            total_tokens=self.total_tokens,
            repeated_fraction=self.repeated_fraction,
            repeated_epochs=self.repeated_epochs if self.kind == "repeated" else 1,
            unique_tokens=self.unique_tokens,
            seed=self.seed,
        )

    def label(self) -> str:
        """A short human label (display only; nothing is ever parsed back from it)."""
        if self.kind == "repeated":
            what = f"f={self.repeated_fraction:g} E={self.repeated_epochs}"
        elif self.kind == "data_constrained":
            what = f"U={self.unique_tokens:,} E={self.repeated_epochs}"
        else:
            what = "control"
        data = "" if self.data_variant is None else f" data={self.data_variant}"
        train = "" if self.train_variant is None else f" train={self.train_variant}"
        return f"{self.model} {what} T={self.total_tokens:,} seed={self.seed}{data}{train}"


@dataclass(kw_only=True, frozen=True)
class RunSpec:
    """Everything that determines one run's result; its hash is the run id."""

    point: RunPoint
    data: PrepareConfig
    optim: OptimConfig
    train: TrainConfig
    probes: ProbeConfig | None = None

    @property
    def run_id(self) -> str:
        return config_hash(self)

    def run_config(self, dataset_dir: Path, mixture_dir: Path) -> RunConfig:
        """The trainer's config of this run, over the sweep's prepared dataset and this run's mixture."""
        return RunConfig(
            dataset=str(Path(dataset_dir).resolve()),
            mixture=str(Path(mixture_dir).resolve()),
            model=self.point.model,
            optim=self.optim,
            train=self.train,
        )


def grid_points(grid: GridConfig) -> list[RunPoint]:
    """The grid's points, controls first at each size and seed; sizes in the grid's order (small first)."""
    points: list[RunPoint] = []
    for model in grid.sizes:
        for seed in grid.seeds:
            if grid.kind == "repeated":
                total = grid.total_tokens or 0  # set for repeated grids (GridConfig.__post_init__)
                points.append(RunPoint(kind="control", model=model, total_tokens=total, seed=seed))
                if grid.unique_controls:
                    points += [RunPoint(kind="control", model=model, total_tokens=unique_control_tokens(total, f),
                                        seed=seed) for f in grid.repeated_fractions]
                points += [
                    RunPoint(kind="repeated", model=model, total_tokens=total, repeated_fraction=f,
                             repeated_epochs=e, seed=seed)
                    for f in grid.repeated_fractions for e in grid.repeated_epochs
                ]
            else:
                totals = sorted({u * e for u in grid.unique_tokens for e in grid.repeated_epochs})
                points += [RunPoint(kind="control", model=model, total_tokens=t, seed=seed) for t in totals]
                points += [
                    RunPoint(kind="data_constrained", model=model, total_tokens=u * e, repeated_epochs=e,
                             unique_tokens=u, seed=seed)
                    for u in grid.unique_tokens for e in grid.repeated_epochs if e > 1
                ]
    return points


def expand_grid(grid: GridConfig) -> list[RunSpec]:
    """One ``RunSpec`` per run, in dispatch order (each data variant's runs together), without duplicates. A
    ``reference = "@<variant>"`` becomes ``"@<run id>"`` of that variant's run of the same point: stable, since a
    run id does not depend on where the sweep lives."""
    specs: dict[str, RunSpec] = {}
    variants: dict[str | None, dict[str, Any]] = dict(grid.train_variants) or {None: {}}
    referring = {v: bool(sibling_references(_training_for(grid.optim, grid.train, u, where="").train))
                 for v, u in variants.items()}
    build_order = sorted(variants, key=referring.__getitem__)  # referenced runs first: their ids are needed
    for data_variant, data in grid.datasets.items():
        for point in grid_points(grid):
            sized = _training_for(grid.optim, grid.train, grid.size_overrides.get(point.model, {}),
                                  where=f"size_overrides.{point.model}")
            by_variant: dict[str | None, RunSpec] = {}
            for train_variant in build_order:
                training = _training_for(sized.optim, sized.train, variants[train_variant],
                                         where=f"train_variants.{train_variant}")
                train = with_siblings(training.train, lambda name: SIBLING + by_variant[name].run_id)
                by_variant[train_variant] = RunSpec(
                    point=replace(point, data_variant=data_variant, train_variant=train_variant), data=data,
                    optim=training.optim, train=replace(train, seed=point.seed), probes=grid.probes)
            for train_variant in variants:  # dispatched in the grid's order of variants
                specs.setdefault(by_variant[train_variant].run_id, by_variant[train_variant])
    return list(specs.values())


# ----------------------------------------------------------------------------- loading and saving

def preset_names() -> list[str]:
    """Names of the grids shipped in ``repeatlab/configs``."""
    folder = resources.files("repeatlab") / "configs"
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def grid_source(name_or_path: str | Path) -> tuple[str, str]:
    """``(label, TOML text)`` of a grid file, or of a shipped preset when no such file exists."""
    path = Path(name_or_path)
    if path.is_file():
        return str(path), read_utf8(path)
    name = str(name_or_path)
    if name in preset_names():
        return f"preset {name}", (resources.files("repeatlab") / "configs" / f"{name}.toml").read_text(encoding="utf-8")
    raise FileNotFoundError(f"no grid file {name!r} and no preset of that name; presets: {', '.join(preset_names())}")


def load_grid(name_or_path: str | Path, *, overrides: dict[str, Any] | None = None) -> GridConfig:
    """Load a grid file or a shipped preset, apply dotted ``overrides`` and resolve data paths."""
    label, text = grid_source(name_or_path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{label} is not valid TOML: {exc}") from None
    grid = from_dict(GridConfig, data)
    if overrides:
        grid = override(grid, overrides)
    return resolve_grid(grid)


def resolve_grid(grid: GridConfig) -> GridConfig:
    """The grid with a relative corpus path made absolute (relative to the current directory)."""
    source = grid.data.source
    if is_named_source(source) or source in (TASK_KIND, REGRESSION_KIND):
        return grid
    prefix, path = ("hf:", source[3:]) if source.startswith("hf:") else ("", source)
    return replace(grid, data=replace(grid.data, source=prefix + str(Path(path).expanduser().resolve())))


def grid_to_toml(grid: GridConfig) -> str:
    """TOML text that loads back to exactly ``grid`` (raises if a ``None`` setting cannot be written)."""
    text = toml_out.dumps(to_dict(grid))
    back = from_dict(GridConfig, tomllib.loads(text))
    if back != grid:
        lost = [f.name for f in dataclasses.fields(grid) if getattr(back, f.name) != getattr(grid, f.name)]
        raise RepeatlabError(f"grid field(s) {', '.join(lost)} hold a null that TOML cannot store; set a value instead")
    return text
