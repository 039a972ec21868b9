"""Render a ``Report`` to one self-contained HTML page with Jinja2 (autoescaping always on).

The page has no scripts and loads nothing: images are ``data:`` URIs and styles are inline. Its Content Security
Policy forbids scripts and any network fetch, so even text that slipped past escaping could not run or phone
home; escaping is still what keeps corpus text (which may contain ``<script>``) as text.
"""

from __future__ import annotations

from functools import lru_cache

import jinja2

from repeatlab.report.model import Report

TEMPLATE = "report.html.j2"
CONTENT_SECURITY_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("repeatlab.report", "templates"),
        autoescape=True,  # every template, whatever its extension
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(report: Report) -> str:
    return environment().get_template(TEMPLATE).render(report=report, csp=CONTENT_SECURITY_POLICY)
