"""``parse_overrides``: the one ``--set KEY=VALUE`` syntax (TOML values) of ``train``, ``sweep`` and ``probe``."""

from __future__ import annotations

import math

import pytest

from repeatlab.config import ConfigError, parse_overrides


def test_values_are_toml_values_and_bare_text_is_a_string() -> None:
    updates = parse_overrides([
        "seeds=[0, 1]", "optim.lr=3e-4", "train.checkpoint_every=1_000", "train.compile=true", "name = other",
        'train.extra_evals={python = "python-stdlib"}', "data.source=hf:/data/pile", 'mode="zero"', "mode2=zero",
        "model=tiny-1l", "when=2024-01-01", "empty=",
    ])
    assert updates == {
        "seeds": [0, 1], "optim.lr": 3e-4, "train.checkpoint_every": 1000, "train.compile": True, "name": "other",
        "train.extra_evals": {"python": "python-stdlib"}, "data.source": "hf:/data/pile", "mode": "zero",
        "mode2": "zero", "model": "tiny-1l", "when": "2024-01-01", "empty": "",
    }
    assert math.isinf(parse_overrides(["x=inf"])["x"])


def test_what_the_json_syntax_took_reads_the_same() -> None:
    """``train --set`` used to read JSON: its null, objects and quoted strings keep their meaning."""
    updates = parse_overrides(["optim.grad_clip=null", 'train.extra_evals={"python": "python-stdlib"}',
                               'train.interventions=[{"hook": "blocks.0.attn.z", "mode": "zero"}]', 'x="a b"'])
    assert updates == {"optim.grad_clip": None, "train.extra_evals": {"python": "python-stdlib"},
                       "train.interventions": [{"hook": "blocks.0.attn.z", "mode": "zero"}], "x": "a b"}


def test_a_value_cannot_smuggle_in_a_second_setting() -> None:
    assert parse_overrides(["a=1\nb = 2"]) == {"a": "1\nb = 2"}


@pytest.mark.parametrize("item", ["no-equals-sign", "=3", " =3"])
def test_items_without_a_key_are_refused(item: str) -> None:
    with pytest.raises(ConfigError, match=r"--set expects KEY=VALUE \(e.g. train.checkpoint_every=500\)"):
        parse_overrides([item])
