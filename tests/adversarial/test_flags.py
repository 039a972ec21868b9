"""Options that cannot work, or would be silently ignored: every numeric option at 0, negative, NaN, infinite and
huge (as digits too: 10^30 reaches the code that typer's integer check lets through); a flag without the one it
needs; a sweep into a directory of the user's files; probes longer than the context. Each is refused in one line,
before any work, leaving the file system as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from repeatlab.audit.config import MAX_SHINGLE_SIZE, MAX_SPAN_TOKENS, AuditConfig, NearDupConfig
from repeatlab.config import MAX_CONTEXT, MAX_VOCAB_SIZE
from repeatlab.data.prepare import PrepareConfig
from repeatlab.laws.bootstrap import MAX_RESAMPLES, BootstrapConfig
from repeatlab.models.gpt import ModelConfig
from repeatlab.probes.config import ProbeConfig
from repeatlab.sweeps.estimate import MAX_TIMED_STEPS
from repeatlab.sweeps.grid import MAX_WORKERS, ResourcesConfig

from .conftest import CONTEXT, cli, error_lines, snapshot, tiny_grid_file, train_args

BAD_NUMBERS = ("0", "-1", "nan", "inf", "-inf", "1e30")
HUGE = str(10**30)


def options(data: Path, out: Path) -> dict[str, tuple[list[str], list[str]]]:
    """Command -> (its arguments, its numeric options)."""
    return {
        "data mix": (["data", "mix", str(data / "prepared"), "--out", str(out), "--total-tokens", "1000",
                      "--repeated-fraction", "0.5", "--repeated-epochs", "2", "--unique-tokens", "500"],
                     ["--total-tokens", "--repeated-fraction", "--repeated-epochs", "--unique-tokens"]),
        "data prepare": (["data", "prepare", str(data / "corpus"), "--out", str(out), "--context", str(CONTEXT),
                          "--test-fraction", "0.1", "--vocab-size", "400"],
                         ["--context", "--test-fraction", "--vocab-size"]),
        "train": (train_args(data, out), ["--lr", "--batch-tokens", "--micro-batch-tokens"]),
    }


def with_value(args: list[str], option: str, value: str) -> list[str]:
    if option in args:
        args = list(args)
        args[args.index(option) + 1] = value
        return args
    return [*args, option, value]


@pytest.mark.parametrize("command", ["data mix", "data prepare", "train"])
def test_every_numeric_option_at_every_bad_value(command: str, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args, numeric = options(data, out)[command]
    if command == "data mix":  # --unique-tokens is a different kind of mixture; each option alone
        args = args[:-2]
    before = snapshot(tmp_path)
    for option in numeric:
        for value in BAD_NUMBERS:
            if (option, value) == ("--repeated-epochs", "1e30"):
                value = str(10**30)  # an integer option: typer reads only integers
            if (option, value) == ("--lr", "1e30"):
                continue  # a finite learning rate: training starts and stops at the first diverged step (below)
            result = cli(*with_value(args, option, value))
            what = f"{command} {option} {value}"
            assert not (result.exception and not isinstance(result.exception, SystemExit)), (what, result.output)
            assert result.exit_code == 2, (what, result.output)
            assert len(error_lines(result)) == 1 or "Invalid value" in result.output, (what, result.output)
            assert snapshot(tmp_path) == before, what
    if command == "train":
        result = cli(*with_value(args, "--lr", "1e30"))
        assert result.exit_code == 2
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "Lower optim.lr" in errors[0], result.output


def test_the_other_commands_numeric_options_at_every_bad_value(data: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "no-run"  # every value below is refused before the run is opened
    commands = {
        ("report", str(run_dir)): ["--fraction"],
        ("audit", str(data / "corpus")): ["--min-span", "--threshold", "--num-perm", "--shingle-size", "--top"],
        ("probe", str(run_dir)): ["--batch-size", "--seed"],
        ("laws", "predict", "--form", "power"): ["--params"],
        ("sweep", "run", "cpu-tiny", "--out", str(tmp_path / "sweep")): ["--workers"],
    }
    before = snapshot(tmp_path)
    for args, numeric in commands.items():
        for option in numeric:
            for value in BAD_NUMBERS:
                if (option, value) in (("--seed", "0"), ("--params", "1e30")):
                    continue  # a valid seed; a law extrapolates to any finite size
                result = cli(*args, option, value)
                what = f"{' '.join(args[:2])} {option} {value}"
                assert not (result.exception and not isinstance(result.exception, SystemExit)), (what, result.output)
                assert result.exit_code == 2, (what, result.output)
                assert len(error_lines(result)) == 1 or "Invalid value" in result.output, (what, result.output)
    assert snapshot(tmp_path) == before


def test_repeated_epochs_without_a_repeated_fraction_is_refused(data: Path, tmp_path: Path) -> None:
    result = cli("data", "mix", str(data / "prepared"), "--total-tokens", str(64 * CONTEXT), "--repeated-epochs",
                 "100", "--out", str(tmp_path / "m"))
    assert result.exit_code == 2
    assert error_lines(result) == ["error: repeated_epochs = 100 needs repeated_fraction > 0 (the share of tokens that "
                                   "are repeats); give repeated_fraction, or leave repeated_epochs at 1"]
    assert list(tmp_path.iterdir()) == []


def test_a_sweep_into_a_directory_of_other_files_is_refused(data: Path, tmp_path: Path) -> None:
    grid = tiny_grid_file(data, tmp_path)
    users = tmp_path / "mine"
    users.mkdir()
    (users / "thesis.tex").write_text("\\begin{document}", encoding="utf-8")
    before = snapshot(tmp_path)
    result = cli("sweep", "run", str(grid), "--out", str(users))
    assert result.exit_code == 2
    assert error_lines(result) == [f"error: {users} is not empty and holds no grid.toml, so it is not a sweep "
                                   f"directory; give a new or empty --out, or the directory of the sweep to resume"]
    assert snapshot(tmp_path) == before


def test_probes_longer_than_the_context_are_refused_when_the_grid_loads(data: Path, tmp_path: Path) -> None:
    # induction_tokens = 50 (the default) needs 101-token sequences; the data's context is 16.
    probes = ProbeConfig(probes=("induction",), n_random_sequences=2)
    with pytest.raises(ValueError, match="grid.probes: the induction probe needs sequences of 101 tokens"):
        tiny_grid_file(data, tmp_path, probes)
    text = tiny_grid_file(data, tmp_path).read_text(encoding="utf-8") + '\n[probes]\nprobes = ["memorisation"]\n'
    (tmp_path / "grid.toml").write_text(text, encoding="utf-8")
    before = snapshot(tmp_path)
    for command in (["sweep", "plan", str(tmp_path / "grid.toml")],
                    ["sweep", "run", str(tmp_path / "grid.toml"), "--out", str(tmp_path / "sweep")]):
        result = cli(*command)
        assert result.exit_code == 2
        assert error_lines(result) == ["error: grid.probes: the memorisation probe needs sequences of 64 tokens but "
                                       "the dataset's context is 16; lower memorisation_prefix_tokens/"
                                       "memorisation_continuation_tokens (data.context = 16)"]
    assert snapshot(tmp_path) == before


def control_table(folder: Path) -> Path:
    """A run table of seven control runs on a power law, for ``laws fit``."""
    table = folder / "runs.csv"
    n = [1e6, 3e6, 1e7, 3e7, 1e8, 3e8, 1e9]
    table.write_text("params,loss\n" + "".join(f"{x},{1.7 + (2.4e8 / x) ** 0.3}\n" for x in n), encoding="utf-8")
    return table


# Each whole-number option with a bound, the setting its message names, and values outside the bound: below it,
# just above it, and huge (these used to overflow a C integer, exhaust memory or loop for ever). The bound is checked
# by the one rule of its concept (repeatlab.config.check_int and the checks built on it), so a TOML grid or --set
# meets the same rule as the command line.
BOUNDED = {
    "models --vocab-size": ("ModelConfig.vocab_size", ["0", "-1", str(MAX_VOCAB_SIZE + 1), HUGE]),
    "models --context": ("ModelConfig.context", ["0", str(MAX_CONTEXT + 1), HUGE]),
    "data prepare --context": ("context must be", ["1", str(MAX_CONTEXT + 1), HUGE]),
    "data prepare --vocab-size": ("vocab_size of a BPE tokenizer", ["299", str(MAX_VOCAB_SIZE + 1), HUGE]),
    "laws fit --bootstrap": ("BootstrapConfig.n_resamples", ["1", "-1", str(MAX_RESAMPLES + 1), HUGE]),
    "audit --min-span": ("min_span_tokens", ["1", str(MAX_SPAN_TOKENS + 1), HUGE]),
    "audit --shingle-size": ("shingle_size", ["0", str(MAX_SHINGLE_SIZE + 1), "2147483647", HUGE]),
    "sweep run --workers": ("--workers", ["0", str(MAX_WORKERS + 1), HUGE]),
    "sweep plan --steps": ("--steps", ["1", str(MAX_TIMED_STEPS + 1), HUGE]),
    "sweep plan --workers": ("--workers", ["0", str(MAX_WORKERS + 1), HUGE]),
    "demo --workers": ("--workers", ["0", str(MAX_WORKERS + 1), HUGE]),
    "reproduce --workers": ("--workers", ["-1", str(MAX_WORKERS + 1), HUGE]),
}


def bounded_args(case: str, data: Path, tmp_path: Path) -> list[str]:
    """The command of ``case``, valid but for the option under test (appended by the test)."""
    grid = str(tmp_path / "grid.toml")
    return {
        "models": ["models"],
        "data prepare": ["data", "prepare", str(data / "corpus"), "--out", str(tmp_path / "p"), "--tokenizer",
                         "bpe" if case.endswith("--vocab-size") else "byte"],
        "laws fit": ["laws", "fit", str(tmp_path / "runs.csv"), "--form", "power"],
        "audit": ["audit", str(data / "corpus"), "--out", str(tmp_path / "audit.json")],
        "sweep run": ["sweep", "run", grid, "--out", str(tmp_path / "sweep")],
        "sweep plan": ["sweep", "plan", grid, "--measure", "--work-dir", str(tmp_path / "work")],
        "demo": ["demo", "--out", str(tmp_path / "demo")],
        "reproduce": ["reproduce", "cpu", "--out", str(tmp_path / "reproduce")],
    }[case.rsplit(" ", 1)[0]]


@pytest.mark.parametrize("case", list(BOUNDED))
def test_huge_whole_numbers_are_refused_when_the_options_are_read(case: str, data: Path, tmp_path: Path) -> None:
    tiny_grid_file(data, tmp_path)
    control_table(tmp_path)
    option = case.rsplit(" ", 1)[1]
    named, values = BOUNDED[case]
    before = snapshot(tmp_path)
    for value in [*values, "nan", "1e30"]:  # the last two are not whole numbers: typer's own check, in one line
        result = cli(*bounded_args(case, data, tmp_path), option, value)
        what = f"{case} {value}"
        assert not (result.exception and not isinstance(result.exception, SystemExit)), (what, result.exception)
        assert result.exit_code == 2, (what, result.output)
        lines = error_lines(result)
        assert len(lines) == 1 and lines[0].startswith("error: "), (what, lines)
        if value in values:
            assert named in lines[0] and "must be an integer from" in lines[0], (what, lines)
            assert f"got {value};" in lines[0] and lines[0].endswith("give a value in that range"), (what, lines)
        else:
            assert f"Invalid value for '{option}'" in lines[0], (what, lines)
        assert snapshot(tmp_path) == before, what


def test_each_bound_itself_is_accepted() -> None:
    """The bounds refuse only what cannot work: the largest allowed value of each builds its config."""
    model = ModelConfig(n_layer=1, d_model=8, n_head=1, vocab_size=MAX_VOCAB_SIZE, context=MAX_CONTEXT)
    assert (model.vocab_size, model.context) == (MAX_VOCAB_SIZE, MAX_CONTEXT)
    assert PrepareConfig(tokenizer="bpe", vocab_size=MAX_VOCAB_SIZE, context=MAX_CONTEXT).vocab_size == MAX_VOCAB_SIZE
    assert AuditConfig(min_span_tokens=MAX_SPAN_TOKENS,
                       near_dup=NearDupConfig(shingle_size=MAX_SHINGLE_SIZE)).near_dup.shingle_size == MAX_SHINGLE_SIZE
    assert BootstrapConfig(n_resamples=MAX_RESAMPLES).n_resamples == MAX_RESAMPLES
    assert ResourcesConfig(local_workers=MAX_WORKERS).local_workers == MAX_WORKERS
    with pytest.raises(ValueError, match="resources.local_workers must be an integer from 1 to 1,024"):
        ResourcesConfig(local_workers=MAX_WORKERS + 1)


NEEDS = {
    "sweep plan --steps": (["--steps", "20"], "error: --steps 20 needs --measure (it sets how many steps are timed); "
                                              "give --measure, or leave --steps out"),
    "sweep plan --workers": (["--workers", "4"], "error: --workers 4 needs --measure (the estimate assumes that "
                                                 "many); give --measure, or leave --workers out"),
    "laws fit --seed": (["--seed", "3"], "error: --seed 3 needs --bootstrap N (it seeds the bootstrap resampling); "
                                         "give --bootstrap N, or leave --seed out"),
    "data prepare --vocab-size": (["--vocab-size", "400"], "error: --vocab-size 400 needs --tokenizer bpe (a byte "
                                                           "tokenizer has its fixed 257 ids and trains nothing); give "
                                                           "--tokenizer bpe, or leave --vocab-size out"),
}


@pytest.mark.parametrize("case", list(NEEDS))
def test_a_flag_without_the_one_it_needs_is_refused(case: str, data: Path, tmp_path: Path) -> None:
    """These were silently ignored; each is refused in the style of ``data mix --repeated-epochs`` without
    ``--repeated-fraction``."""
    grid = tiny_grid_file(data, tmp_path)
    table = control_table(tmp_path)
    command = {"sweep plan": ["sweep", "plan", str(grid)],
               "laws fit": ["laws", "fit", str(table), "--form", "power", "--out", str(tmp_path / "fit.json")],
               "data prepare": ["data", "prepare", str(data / "corpus"), "--out", str(tmp_path / "p"),
                                "--tokenizer", "byte", "--context", str(CONTEXT)]}[case.rsplit(" ", 1)[0]]
    flag, expected = NEEDS[case]
    before = snapshot(tmp_path)
    result = cli(*command, *flag)
    assert result.exit_code == 2, result.output
    assert error_lines(result) == [expected]
    assert snapshot(tmp_path) == before


def test_sweep_plan_work_dir_without_measure_is_refused(data: Path, tmp_path: Path) -> None:
    grid = tiny_grid_file(data, tmp_path)
    work = tmp_path / "work"
    result = cli("sweep", "plan", str(grid), "--work-dir", str(work))
    assert result.exit_code == 2
    assert error_lines(result) == [f"error: --work-dir {work} needs --measure (the data the timing trains on); give "
                                   f"--measure, or leave --work-dir out"]
    assert not work.exists()


def test_the_seed_counts_with_a_bootstrap(tmp_path: Path) -> None:
    """With --bootstrap, --seed is accepted and used: two seeds draw different resamples, one seed the same."""
    table = control_table(tmp_path)
    fits = {}
    for seed in ("0", "1", "1"):
        result = cli("laws", "fit", str(table), "--form", "power", "--bootstrap", "20", "--seed", seed, "--json")
        assert result.exit_code == 0, result.output
        fits.setdefault(seed, []).append(result.output)
    assert fits["1"][0] == fits["1"][1] and fits["0"][0] != fits["1"][0]


@pytest.mark.parametrize("name", ["batch_size", "n_random_sequences", "n_test_sequences", "n_copy_paragraphs",
                                  "n_memorisation_sequences", "ablation_top_k", "induction_tokens"])
def test_probe_settings_are_bounded_when_the_config_is_built(name: str) -> None:
    """``repeatlab probe --batch-size 10^30`` overflowed a C integer inside torch; every probe count is now refused
    when the ``ProbeConfig`` is built, so the CLI, ``--set`` and a grid's ``[probes]`` get the same one line."""
    high = "1,048,576" if name == "induction_tokens" else "1,000,000"
    with pytest.raises(ValueError, match=f"ProbeConfig.{name} must be an integer from 1 to {high}"):
        ProbeConfig(**{name: 10**30})
    with pytest.raises(ValueError, match=f"ProbeConfig.{name} must be an integer from 1"):
        ProbeConfig(**{name: 0})
