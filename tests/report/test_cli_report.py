"""``repeatlab report DIR --out FILE``.

The command is driven through its own Typer app: importing the whole CLI pulls in torch for the other commands,
and the report command must work without it. Its registration in ``__main__`` is checked separately.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import typer
from typer.testing import CliRunner

from repeatlab.cli.report import report

runner = CliRunner()
app = typer.Typer()
app.command()(report)
app.command("noop")(lambda: None)  # a second command keeps typer from collapsing the app into ``report``


def test_writes_one_file_and_says_so(tmp_path: Path, synth) -> None:
    sweep = synth.write_sweep(tmp_path / "s", synth.SweepSpec(sizes=synth.SIZES[:2], epochs=(10, 100), with_probes=False))
    out = tmp_path / "out" / "r.html"
    result = runner.invoke(app, ["report", str(sweep), "--out", str(out), "--fraction", "0.5",
                                 "--curve-run", "tiny-2l-f0.5-E100-s0"])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "partial" in result.output
    html = out.read_text(encoding="utf-8")
    assert "tiny-2l-f0.5-E100-s0" in html and "f = 50%" in html
    assert list(out.parent.iterdir()) == [out]  # written atomically: no temporary file left


def test_default_output_is_inside_the_directory(tmp_path: Path, synth) -> None:
    run = synth.write_run(tmp_path / "run-a")
    result = runner.invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    assert (run / "report.html").is_file()


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "does not exist" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["report", str(tmp_path), "--fraction", "2"])
    assert result.exit_code == 2 and "repeated_fraction" in result.output


def test_registered() -> None:
    spec = importlib.util.find_spec("repeatlab.cli.__main__")  # located, not imported (it imports torch)
    assert spec is not None and spec.origin is not None
    source = Path(spec.origin).read_text(encoding="utf-8")
    calls = [node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Call) and getattr(node.func.func, "attr", "") == "command"]
    assert any(call.func.args and getattr(call.func.args[0], "value", None) == "report" for call in calls)
