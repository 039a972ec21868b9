"""Matplotlib helpers: figures without pyplot's global state, encoded as PNG ``data:`` URIs.

Figures are built on ``matplotlib.figure.Figure`` directly and rendered by the Agg canvas, so making a report
never opens a window, never depends on the ``MPLBACKEND`` of the caller and is safe in threads.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap
from matplotlib.figure import Figure as MplFigure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from repeatlab.report.model import Figure

DPI = 110
FONT_SIZE = 9


def new_figure(width: float, height: float) -> MplFigure:
    """A figure of ``width`` x ``height`` inches with a constrained layout and the report's font size."""
    fig = MplFigure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def encode(fig: MplFigure, alt: str) -> Figure:
    """Render to PNG and wrap as a report figure."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return Figure(uri=f"data:image/png;base64,{data}", alt=alt)


def style(ax: Axes) -> None:
    """Light grid and readable tick labels."""
    ax.grid(True, which="major", alpha=0.3, linewidth=0.6)
    ax.tick_params(labelsize=FONT_SIZE - 1)
    for spine in ("top", "right"):
        ax.spines[spine].set_visible(False)


def plain_log_axis(ax: Axes, axis: str = "y") -> None:
    """Log scale with plain tick labels (2, 3, 5 rather than 2x10^0): losses span less than a decade."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    target.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
    target.set_minor_formatter(NullFormatter())


def size_colors(sizes: Sequence[str]) -> dict[str, tuple[float, float, float, float]]:
    """One colour per model size, small to large along viridis (so colour order is size order)."""
    cmap: Colormap = colormaps["viridis"]
    n = max(len(sizes), 1)
    return {size: cmap(0.1 + 0.8 * i / max(n - 1, 1)) for i, size in enumerate(sizes)}


def grid_shape(n: int, max_cols: int = 3) -> tuple[int, int]:
    """``(rows, cols)`` of a grid of panels for ``n`` panels (at least one)."""
    n = max(n, 1)
    cols = min(n, max_cols)
    return (n + cols - 1) // cols, cols


def category_position(value: float, categories: Sequence[float]) -> float:
    """Where ``value`` falls on an axis whose ticks are ``categories`` (ascending) at 0, 1, 2, ...

    Interpolates in log space (epochs are log-spaced); outside the categories it extends the end spacing.
    """
    logs = np.log(np.asarray(categories, dtype=np.float64))
    position = np.arange(len(logs), dtype=np.float64)
    if len(logs) == 1:
        return 0.0 if np.isclose(np.log(value), logs[0]) else (-1.0 if np.log(value) < logs[0] else 1.0)
    v = float(np.log(value))
    if v < logs[0]:
        return float((v - logs[0]) / (logs[1] - logs[0]))
    if v > logs[-1]:
        return float(position[-1] + (v - logs[-1]) / (logs[-1] - logs[-2]))
    return float(np.interp(v, logs, position))
