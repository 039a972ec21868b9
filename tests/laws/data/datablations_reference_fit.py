"""Rerun Muennighoff et al.'s own fit of R_D*, R_N* (datablations ``utils/parametric_fit.ipynb``) and record it.

The notebook's protocol, kept as it is: the 182 runs in float32 torch tensors, the base constants of their C4 fit
held fixed by zeroing their gradient, Huber loss (delta 1e-3, summed) on log loss, ``torch.optim.LBFGS`` (lr 0.1,
history 10, max_iter 20, strong Wolfe line search) stepped 50 times from each start of R_D*, R_N* in
``numpy.linspace(0, 20, 4)``, and the lowest loss kept. It writes ``datablations_reference_fit.json`` beside
itself, which ``tests/laws/test_identify.py`` reads: each start's endpoint, its float32 loss, the gradient there,
and whether torch's stopping rule (max |grad| <= tolerance_grad = 1e-7) had frozen it.

Run from the repository root: ``python tests/laws/data/datablations_reference_fit.py`` (needs torch; ~1 min).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

HERE = Path(__file__).parent
BASE = [6.255414, 7.3049974, 0.6254804, 0.3526596, 0.3526596]  # a, b, e, alpha, beta of their C4 fit
TOLERANCE_GRAD = 1e-7  # torch.optim.LBFGS's default


def notebook_inputs(frame: pd.DataFrame) -> torch.Tensor:
    """The notebook's ``inp`` rows: U_N, U, R_D, R_N, loss (U_N from the fixed base, as there)."""
    a, b, _, alpha, beta = BASE
    big_a, big_b = math.exp(a), math.exp(b)
    g = ((alpha * big_a) / (beta * big_b)) ** (1 / (alpha + beta))
    share = beta / (alpha + beta)

    def optimal_n(flops: float) -> float:
        return g * (flops / 6) ** share

    def d_to_c(tokens: float) -> float:
        return ((g * tokens) ** (1 / (alpha / (alpha + beta)))) * 6

    rows = []
    for p, t, ut, loss in frame[["params", "tokens", "unique_tokens", "val_loss"]].itertuples(index=False):
        u_n = min(optimal_n(d_to_c(ut)), p)
        rows.append([u_n, ut, max(t / ut - 1, 0), max(p / u_n - 1, 0), loss])
    return torch.Tensor(rows)


def notebook_loss(inp: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    a, b, e, alpha, beta, ep_star, n_star = params
    pre_lse = torch.stack(
        [
            a - alpha * torch.log(inp[:, 0] + (inp[:, 0] * n_star * (1 - torch.exp(-1 * inp[:, 3] / n_star)))),
            b - beta * torch.log(inp[:, 1] + (inp[:, 1] * ep_star * (1 - torch.exp(-1 * inp[:, 2] / ep_star)))),
            e.expand((inp.shape[0])),
        ]
    )
    post_lse = torch.logsumexp(pre_lse, dim=0)
    return torch.nn.functional.huber_loss(post_lse, torch.log(inp[:, 4]), delta=1e-3, reduction="none").sum()


@dataclass(frozen=True)
class StartRecord:
    """Where one start of the notebook's grid ended."""

    start: list[float]
    end: list[float]
    loss_float32: float
    grad_at_end: list[float]
    frozen_by_tolerance_grad: bool
    iterations: int
    """Of the 50 x 20 iterations allowed, how many ran: fewer means torch's tolerance_change (1e-9 on the loss or
    the step) stopped the start, which at a float32 loss of 0.0158 (one ulp ~1.9e-9) is rounding."""


def fit_from(inp: torch.Tensor, ep_star: float, n_star: float) -> StartRecord:
    params = torch.nn.Parameter(data=torch.Tensor([*BASE, ep_star, n_star]))
    lbfgs = torch.optim.LBFGS([params], lr=1e-1, history_size=10, max_iter=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        lbfgs.zero_grad()
        value = notebook_loss(inp, params)
        value.backward()
        assert params.grad is not None
        params.grad[:5] = 0  # the notebook's fixed=True
        return value

    value = None
    for _ in range(50):
        value = lbfgs.step(closure)
    closure()
    assert params.grad is not None and value is not None
    grad = params.grad[5:].detach().numpy().astype(float)
    end = params.detach().numpy().astype(float)
    return StartRecord(
        start=[float(ep_star), float(n_star)],
        end=[float(end[5]), float(end[6])],
        loss_float32=float(value.detach()),
        grad_at_end=grad.tolist(),
        frozen_by_tolerance_grad=bool(np.max(np.abs(grad)) <= TOLERANCE_GRAD),
        iterations=int(lbfgs.state[params]["n_iter"]),
    )


def main() -> None:
    frame = pd.read_csv(HERE / "datablations_c4_runs.csv")
    inp = notebook_inputs(frame)
    starts = [fit_from(inp, ep, n) for ep in np.linspace(0, 20, 4) for n in np.linspace(0, 20, 4)]
    best = starts[int(np.nanargmin([s.loss_float32 for s in starts]))]  # the zero starts are NaN, as there
    record = {
        "source": "huggingface/datablations utils/parametric_fit.ipynb, fitting cell, rerun by this script",
        "torch": torch.__version__,
        "n_runs": len(frame),
        "starts": [asdict(s) for s in starts],
        "best": asdict(best),
    }
    (HERE / "datablations_reference_fit.json").write_text(json.dumps(record, indent=2) + "\n")
    for s in starts:
        print(s)
    print("best", best)


if __name__ == "__main__":
    main()
