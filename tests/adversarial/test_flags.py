"""Options that cannot work, or would be silently ignored: every numeric option at 0, negative, NaN, infinite and
huge; a flag without the one it needs; a sweep into a directory of the user's files; probes longer than the context.
Each is refused in one line, before any work, leaving the file system as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from repeatlab.probes.config import ProbeConfig

from .conftest import CONTEXT, cli, error_lines, snapshot, tiny_grid_file, train_args

BAD_NUMBERS = ("0", "-1", "nan", "inf", "-inf", "1e30")


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
