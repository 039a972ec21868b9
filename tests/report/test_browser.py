"""The report in real headless Chromium: loads cleanly and offline, every figure renders, escaping holds.

Drives Debian's ``chromium`` through Playwright (``scripts/screenshot_report.py``). Skipped, with the reason, when
either is missing (see tests/QUARANTINES.md); ``scripts/install-browser.sh`` installs the browser.
"""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _screenshot_module() -> ModuleType:
    name = "repeatlab_screenshot_report"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "screenshot_report.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


shot = _screenshot_module()
if importlib.util.find_spec("playwright") is None:
    pytest.skip("playwright is not installed (pip install -e '.[test]')", allow_module_level=True)
if shot.find_chromium() is None:
    pytest.skip("no Chromium found (run scripts/install-browser.sh)", allow_module_level=True)


def pixels(png: bytes) -> np.ndarray:
    from matplotlib.image import imread

    return imread(io.BytesIO(png), format="png")[..., :3]  # [H, W, RGB] floats in 0..1


def assert_not_blank(png: bytes, what: str) -> None:
    assert_not_blank_pixels(pixels(png), what)


def assert_not_blank_pixels(image: np.ndarray, what: str) -> None:
    non_white = (image < 0.9).any(axis=-1).mean()
    assert image.std() > 0.05 and non_white > 0.02, f"{what} looks blank (std {image.std():.3f}, {non_white:.1%} ink)"


def test_full_report_renders_offline_with_every_figure(full_html: Path, full_report, tmp_path: Path) -> None:
    figure_keys = [s.key for s in full_report.sections if s.figure is not None]
    with shot.open_report(full_html) as (page, log):
        assert page.title() == full_report.title
        figures = page.locator("figure.chart img")
        assert figures.count() == len(figure_keys) == 7
        # Where each figure is drawn on the page (CSS pixels = screenshot pixels at scale 1), then one capture.
        boxes = page.evaluate("""() => [...document.querySelectorAll('figure.chart img')].map(img => {
            const r = img.getBoundingClientRect();
            return {key: img.parentElement.dataset.figure, decoded: img.complete ? img.naturalWidth : 0,
                    x: r.left + window.scrollX, y: r.top + window.scrollY, w: r.width, h: r.height};
        })""")
        page_png = page.screenshot(full_page=True)
        whole = pixels(page_png)
        assert [b["key"] for b in boxes] == figure_keys
        for box in boxes:
            assert box["decoded"] > 200 and box["w"] > 200 and box["h"] > 100, f"figure {box['key']} did not render"
            x, y, w, h = (round(box[k]) for k in ("x", "y", "w", "h"))
            region = whole[y:y + h, x:x + w]
            assert region.shape[:2] == (h, w), f"figure {box['key']} lies outside the page capture"
            assert_not_blank_pixels(region, f"figure {box['key']}")
        # Tables behind the figures open and hold numbers.
        page.locator("#degradation details summary").first.click()
        assert page.locator("#degradation table tbody tr").count() >= 4
        # Escaping: the planted markup is text on the page, never elements or running code.
        assert page.evaluate("() => window.__pwned") is None
        assert page.locator("script").count() == 0
        assert page.locator("img[src='x']").count() == 0
        samples = page.locator("#repeated-samples pre")
        assert samples.count() >= 1 and "<script>window.__pwned" in " ".join(samples.all_inner_texts())
        assert "<img src=x onerror=" in page.locator("#overview").inner_text() + page.locator("#overview").evaluate(
            "el => el.textContent")
    assert log.console_errors == [] and log.page_errors == [], (log.console_errors, log.page_errors)
    assert log.requests == [], f"the report made network requests: {log.requests}"
    assert_not_blank(page_png, "the page")


def test_screenshot_script_writes_a_png(full_html: Path, tmp_path: Path) -> None:
    out = tmp_path / "shot.png"
    assert shot.main([str(full_html), str(out)]) == 0
    assert_not_blank(out.read_bytes(), "the screenshot")


def test_single_run_report_in_the_browser(tmp_path: Path, synth) -> None:
    from repeatlab.report import write_report

    run = synth.write_run(tmp_path / "run-a")
    write_report(run, tmp_path / "run.html")
    with shot.open_report(tmp_path / "run.html") as (page, log):
        assert page.locator("figure.chart img").count() == 2
        for image in page.locator("figure.chart img").all():
            assert image.evaluate("img => img.complete && img.naturalWidth > 0")
    assert log.console_errors == [] and log.page_errors == [] and log.requests == []
