"""The sweep at a glance: runs by status and kind, failed runs with their errors, and the grid."""

from __future__ import annotations

from repeatlab.report.analysis import Analysis
from repeatlab.report.model import Section, Table

MAX_ERROR_CHARS = 400


def overview_section(an: Analysis) -> Section:
    data = an.data
    results = data.results
    tables = []
    if "status" in results and len(results):
        counts = results.groupby(["kind" if "kind" in results else "status", "status"]).size().unstack(fill_value=0)
        counts = counts.reset_index().rename(columns={"index": "kind"})
        tables.append(Table.from_frame("Runs by kind and status", counts))
    if "status" in results and (results["status"] == "failed").any():
        failed = results[results["status"] == "failed"]
        columns = [c for c in ("run_id", "model", "kind", "error") if c in failed]
        frame = failed[columns].copy()
        if "error" in frame:
            frame["error"] = frame["error"].fillna("").astype(str).str.slice(0, MAX_ERROR_CHARS)
        tables.append(Table.from_frame("Failed runs", frame))
    texts = (("grid.toml", data.grid_text),) if data.grid_text else ()
    caption = (f"Run directory {data.path.name}." if data.is_single_run else
               f"{len(results)} runs in the sweep; figures use the {len(an.done)} finished ones, averaging seeds.")
    return Section(key="overview", title="Sweep overview" if not data.is_single_run else "Run overview",
                   caption=caption, tables=tuple(tables), texts=texts, missing=data.problems)

