#!/usr/bin/env python
"""Open a repeatlab HTML report in headless Chromium, check it, and save a screenshot.

    python scripts/screenshot_report.py REPORT.html OUT.png [--width 1200] [--height 900] [--full-page]

The picture in docs/ is made with ``--width 1100 --height 2200`` from the demo sweep's report.

Uses Playwright's Python package with the *system* Chromium (Debian's ``chromium``; never ``playwright install``),
started so it cannot reach the network. The page is checked while it loads: console errors, page errors and any
request that is not the report file itself or a ``data:`` URI are reported, and the script exits non-zero if there
are any (so the lead's regeneration of ``docs/`` cannot silently capture a broken page). The browser test in
``tests/report/test_browser.py`` uses ``open_report`` from this file.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
CHROMIUM_ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)


def find_chromium() -> str | None:
    """The system Chromium: ``$REPEATLAB_CHROMIUM``, else the usual Debian paths, else ``chromium`` on PATH."""
    env = os.environ.get("REPEATLAB_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    for candidate in CHROMIUM_CANDIDATES:
        if Path(candidate).is_file():
            return candidate
    return shutil.which("chromium")


@dataclass
class PageLog:
    """What happened while the page loaded."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    """Every request other than the report itself and ``data:`` URIs: there must be none."""


@contextlib.contextmanager
def open_report(report: Path, *, width: int = 1200, height: int = 900) -> Iterator[tuple[Any, PageLog]]:
    """Yield ``(page, log)`` with the report loaded in a fresh headless Chromium profile."""
    from playwright.sync_api import sync_playwright

    executable = find_chromium()
    if executable is None:
        raise FileNotFoundError("no Chromium found; run scripts/install-browser.sh (or set REPEATLAB_CHROMIUM)")
    url = Path(report).resolve().as_uri()
    log = PageLog()
    with tempfile.TemporaryDirectory(prefix="repeatlab-chromium-") as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=executable, headless=True, args=list(CHROMIUM_ARGS),
            viewport={"width": width, "height": height}, offline=True, service_workers="block",
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.on("console", lambda m: log.console_errors.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: log.page_errors.append(str(e)))

            def allowed(request_url: str) -> bool:
                return request_url == url or request_url.startswith("data:")

            # Log every other request, and abort it so that nothing leaves the machine even if one is made.
            page.on("request", lambda r: None if allowed(r.url) else log.requests.append(r.url))
            context.route("**/*", lambda r: r.continue_() if allowed(r.request.url) else r.abort())
            page.goto(url, wait_until="load")
            yield page, log
        finally:
            context.close()


def screenshot(report: Path, out: Path, *, width: int = 1200, height: int = 900, full_page: bool = False) -> PageLog:
    """Save a PNG of the report (its first ``height`` pixels, or the whole page) and return what the page logged."""
    with open_report(report, width=width, height=height) as (page, log):
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=full_page)
    return log


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=900, help="height of the browser window (the capture)")
    parser.add_argument("--full-page", action="store_true", help="capture the whole page, not the first screen")
    args = parser.parse_args(argv)
    if not args.report.is_file():
        parser.error(f"{args.report} does not exist")
    log = screenshot(args.report, args.out, width=args.width, height=args.height, full_page=args.full_page)
    problems = log.console_errors + log.page_errors + [f"network request: {u}" for u in log.requests]
    for problem in problems:
        print(f"screenshot_report: {problem}", file=sys.stderr)
    print(f"wrote {args.out}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
