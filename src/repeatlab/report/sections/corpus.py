"""What was repeated: a few sequences of a repeated run's subset, as (escaped) text."""

from __future__ import annotations

from pathlib import Path

from repeatlab.report.analysis import Analysis
from repeatlab.report.model import Section, format_epochs
from repeatlab.report.samples import repeated_samples


def samples_section(an: Analysis) -> Section | None:
    """``None`` when no finished run repeated anything (nothing to show)."""
    done = an.done
    if "kind" not in done or not (done["kind"] == "repeated").any():
        return None
    key, title = "repeated-samples", "Samples of the repeated subset"
    peaks = an.peaks
    candidates = list(peaks["run_id"]) if not peaks.empty else []
    candidates += [r for r in done[done["kind"] == "repeated"]["run_id"] if r not in candidates]
    problems: list[str] = []
    for run_id in candidates:
        record = an.data.runs.get(run_id)
        config = (record.config or {}) if record else {}
        if not config.get("dataset") or not config.get("mixture"):
            continue
        dataset, mixture = _resolve(an.data.path, config["dataset"]), _resolve(an.data.path, config["mixture"])
        try:
            samples = repeated_samples(dataset, mixture, n=an.options.max_samples, max_chars=an.options.sample_chars)
        except (FileNotFoundError, ValueError) as exc:
            problems.append(str(exc))
            continue
        if not samples:
            continue
        row = done[done["run_id"] == run_id].iloc[0]
        caption = (f"Sequences of the repeated subset of {run_id}, each seen {format_epochs(row.get('repeated_epochs'))} "
                   "times in training, decoded with the dataset's tokenizer. Look at what kind of text the model was "
                   "made to memorise.")
        texts = tuple((f"training sequence {s.sequence_id}", s.text) for s in samples)
        return Section(key=key, title=title, caption=caption, texts=texts)
    why = problems[0] if problems else "no repeated run's config.json names an existing dataset and mixture"
    return Section(key=key, title=title, missing=(f"no text samples: {why}",))


def _resolve(root: Path, value: str) -> Path:
    """Config paths are absolute when written; a sweep copied elsewhere keeps ``data/`` and ``mixtures/`` inside."""
    path = Path(value)
    if path.exists() or path.is_absolute() and not (root / path.name).exists():
        return path
    for candidate in (root / value, root / path.name, root / "mixtures" / path.name):
        if candidate.exists():
            return candidate
    return path
