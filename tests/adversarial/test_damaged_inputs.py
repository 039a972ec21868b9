"""Damaged files of every kind repeatlab reads, each refused in one line that names the file, before any work:
mixtures, configs, run tables, checkpoints (the newest damaged one is passed over for the one before it)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from repeatlab.train.run import CHECKPOINT_DIR, MODEL_FILE, SUMMARY_FILE

from .conftest import cli, error_lines, snapshot, train_args


def damaged_mixture(data: Path, tmp_path: Path, damage: str) -> Path:
    mix = tmp_path / "mix"
    shutil.copytree(data / "mix", mix)
    order = np.load(mix / "order.npy")
    if damage == "float dtype":
        np.save(mix / "order.npy", order.astype(np.float32))
    elif damage == "id out of range":
        order[7] = 10**6
        np.save(mix / "order.npy", order)
    elif damage == "negative id":
        order[0] = -1
        np.save(mix / "order.npy", order)
    elif damage == "too short":
        np.save(mix / "order.npy", order[:-3])
    elif damage == "two-dimensional":
        np.save(mix / "order.npy", order.reshape(-1, 2))
    elif damage == "not npy":
        (mix / "order.npy").write_bytes(b"\x00garbage")
    elif damage == "repeated id out of range":
        np.save(mix / "repeated_ids.npy", np.array([10**6]))
    elif damage == "manifest not json":
        (mix / "manifest.json").write_text("{", encoding="utf-8")
    elif damage == "manifest not utf-8":
        (mix / "manifest.json").write_bytes(b'{"kind": "\xff"}')
    return mix


@pytest.mark.parametrize(("damage", "message"), [
    ("float dtype", "order.npy holds float32 of shape (480,), not a list of integer sequence ids"),
    ("two-dimensional", "order.npy holds int64 of shape (240, 2), not a list of integer sequence ids"),
    ("id out of range", "to 1000000, outside the 2,305 training sequences of"),
    ("negative id", "order holds sequence ids from -1 to"),
    ("repeated id out of range", "repeated_ids holds sequence ids from 1000000 to 1000000"),
    ("too short", "order.npy has 477 ids, manifest says 480"),
    ("not npy", "is corrupt (order.npy:"),
    ("manifest not json", "manifest.json is not valid JSON"),
    ("manifest not utf-8", "manifest.json is not UTF-8 text (byte 10: invalid start byte)"),
])
def test_a_damaged_mixture_is_refused_before_training(damage: str, message: str, data: Path, tmp_path: Path) -> None:
    mix = damaged_mixture(data, tmp_path, damage)
    before = snapshot(tmp_path)
    args = train_args(data, tmp_path / "run")
    args[args.index("--mixture") + 1] = str(mix)
    result = cli(*args)
    assert result.exit_code == 2 and result.exception is not None and isinstance(result.exception, SystemExit)
    lines = error_lines(result)
    assert len(lines) == 1 and message in lines[0] and str(mix) in lines[0], lines
    assert snapshot(tmp_path) == before  # no run directory, config or metrics left behind


def edit_meta(dataset: Path, **changes: object) -> None:
    meta = json.loads((dataset / "meta.json").read_text(encoding="utf-8"))
    meta.update(changes)
    (dataset / "meta.json").write_text(json.dumps({k: v for k, v in meta.items() if v is not None}), encoding="utf-8")


DATASET_DAMAGE = {
    "meta.json without context": (lambda d: edit_meta(d, context=None), "context is None, not a non-negative integer"),
    "context not a number": (lambda d: edit_meta(d, context="x"), "context is 'x', not a non-negative integer"),
    "dtype not an integer type": (lambda d: edit_meta(d, dtype="complex128"), "dtype is 'complex128', not an integer"),
    "sequence count off": (lambda d: edit_meta(d, train={"n_tokens": 100, "n_sequences": 99}),
                           "train.n_sequences = 99 does not fit 100 tokens at context 16"),
    "train.bin truncated": (lambda d: (d / "train.bin").write_bytes((d / "train.bin").read_bytes()[:1001]),
                            "train.bin is missing or has the wrong size"),
    "test.bin missing": (lambda d: (d / "test.bin").unlink(), "test.bin is missing or has the wrong size"),
    "meta.json not JSON": (lambda d: (d / "meta.json").write_text("{", encoding="utf-8"), "meta.json is not valid JSON"),
    "tokenizer.json truncated": (lambda d: (d / "tokenizer.json").write_bytes((d / "tokenizer.json").read_bytes()[:500]),
                                 "tokenizer.json is not a valid tokenizer.json (EOF while parsing"),
    "tokenizer.json missing": (lambda d: (d / "tokenizer.json").unlink(), "tokenizer.json is missing; the prepared "
                               "dataset is corrupt: run 'repeatlab data prepare' again"),
    "tokenizer.json of another vocabulary": (lambda d: drop_a_token(d / "tokenizer.json"),
                                             "tokenizer.json (256 tokens, end-of-text 256) does not match meta.json "
                                             "(vocab_size 257, eot_id 256)"),
}


def drop_a_token(file: Path) -> None:
    tokenizer = json.loads(file.read_text(encoding="utf-8"))
    vocab = tokenizer["model"]["vocab"]
    del vocab[next(iter(vocab))]
    file.write_text(json.dumps(tokenizer), encoding="utf-8")


@pytest.mark.parametrize("damage", sorted(DATASET_DAMAGE))
def test_a_damaged_prepared_dataset_is_refused_at_load(damage: str, data: Path, tmp_path: Path) -> None:
    dataset = tmp_path / "prepared"
    shutil.copytree(data / "prepared", dataset)
    change, message = DATASET_DAMAGE[damage]
    change(dataset)
    before = snapshot(tmp_path)
    args = train_args(data, tmp_path / "run")
    args[args.index("--dataset") + 1] = str(dataset)
    for command in (args, ["data", "mix", str(dataset), "--total-tokens", "1000", "--out", str(tmp_path / "mix")],
                    ["data", "show", str(dataset)]):
        result = cli(*command)
        assert result.exit_code == 2, (command[:2], result.output)
        lines = error_lines(result)
        assert len(lines) == 1 and message in lines[0] and str(dataset) in lines[0], (command[:2], lines)
    assert snapshot(tmp_path) == before


def test_non_utf8_config_and_run_table_name_the_file(data: Path, tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_bytes(b'model = "tiny-1l"\n# caf\xe9\n')
    result = cli("train", str(tmp_path / "run"), "--config", str(config))
    assert result.exit_code == 2
    assert error_lines(result) == [f"error: {config} is not UTF-8 text (byte 23: invalid continuation byte); save it "
                                   f"as UTF-8, or give the right file"]
    table = tmp_path / "runs.csv"
    table.write_bytes(b"params,loss\n1e6,3.1\n1e7,2.9\n\xff\xfe,2.5\n")
    result = cli("laws", "fit", str(table), "--form", "power")
    assert result.exit_code == 2
    lines = error_lines(result)
    assert len(lines) == 1 and lines[0].startswith(f"error: run table {table} is not UTF-8 text"), lines
    grid = tmp_path / "grid.toml"
    grid.write_bytes(b'name = "t\xff"\n')
    result = cli("sweep", "plan", str(grid))
    assert result.exit_code == 2 and error_lines(result)[0].startswith(f"error: {grid} is not UTF-8 text")
    assert not (tmp_path / "run").exists()


def test_laws_fit_on_identical_rows_says_what_is_wrong(tmp_path: Path) -> None:
    table = tmp_path / "runs.csv"
    table.write_text("params,tokens,loss\n" + "1000000,2000000,3.5\n" * 6, encoding="utf-8")
    for form in ("power", "chinchilla"):
        result = cli("laws", "fit", str(table), "--form", form)
        assert result.exit_code == 2
        assert error_lines(result) == [f"error: every run fitted has params = 1e+06; the {form} law needs runs at two "
                                       f"or more values of params: add runs that differ in it"]


@pytest.fixture()
def interrupted_run(data: Path, tmp_path: Path) -> tuple[Path, str]:
    """A finished 60-step run turned into one killed before its summary (checkpoints at steps 40 and 60 kept),
    and the sha256 of the weights it ended with."""
    run_dir = tmp_path / "run"
    result = cli(*train_args(data, run_dir))
    assert result.exit_code == 0, result.output
    digest = hashlib.sha256((run_dir / MODEL_FILE).read_bytes()).hexdigest()
    (run_dir / SUMMARY_FILE).unlink()
    (run_dir / MODEL_FILE).unlink()
    assert sorted(p.name for p in (run_dir / CHECKPOINT_DIR).iterdir()) == ["step_0000040", "step_0000060"]
    return run_dir, digest


@pytest.mark.parametrize("damaged_file", ["optimizer.pt", "model.safetensors", "meta.json"])
def test_a_damaged_newest_checkpoint_is_passed_over(damaged_file: str, data: Path,
                                                    interrupted_run: tuple[Path, str]) -> None:
    run_dir, digest = interrupted_run
    newest = run_dir / CHECKPOINT_DIR / "step_0000060"
    (newest / damaged_file).write_bytes(b"\x80\x02garbage")
    result = cli(*train_args(data, run_dir))
    assert result.exit_code == 0, result.output
    skipped = [line for line in result.output.splitlines() if line.startswith("skipping a damaged checkpoint")]
    assert len(skipped) == 1 and str(newest) in skipped[0], result.output
    assert "weights_only" not in result.output
    assert "resuming at step 40/60" in result.output
    # Exact resumption: the run ends with the weights it had before the damage, byte for byte.
    assert hashlib.sha256((run_dir / MODEL_FILE).read_bytes()).hexdigest() == digest


def test_no_checkpoint_that_loads_is_refused_in_one_line(data: Path, interrupted_run: tuple[Path, str]) -> None:
    run_dir, _ = interrupted_run
    for step in ("step_0000040", "step_0000060"):
        (run_dir / CHECKPOINT_DIR / step / "optimizer.pt").write_bytes(b"\x80\x02garbage")
    before = snapshot(run_dir)
    result = cli(*train_args(data, run_dir))
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and f"no checkpoint in {run_dir / CHECKPOINT_DIR} loads" in lines[0]
    assert "weights_only" not in result.output
    assert snapshot(run_dir) == before
