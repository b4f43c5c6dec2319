"""Reading a study directory back: results table and rate report, as data.

Used by ``genanalysis report`` and ``genanalysis plot`` (which draws the rates with
:func:`genanalysis.plots.plot_study`); everything here reads only
``DIR/results.sqlite`` (the spec that was run is stored in it), so a directory copied
off a cluster can be reported anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from genanalysis.exceptions import InputError
from genanalysis.results import DB_NAME, ResultsStore, TaskRow, markdown_table, results_table, write_csv
from genanalysis.sweep.labels import TEXT, column_name, column_unit
from genanalysis.sweep.rates import RateResult, default_rates, evaluate_rates
from genanalysis.sweep.spec import Rate, Study, parse_study

__all__ = ["StudyOutput", "load_output", "rate_report", "write_tables", "column_legend"]


@dataclass
class StudyOutput:
    """A study directory read back: its spec, task rows (current points) and declared units."""

    path: Path
    study: Study
    rows: list[TaskRow]
    units: dict[str, str]
    n_points: int


def load_output(path: str | Path) -> StudyOutput:
    """Read ``DIR/results.sqlite``; InputError if DIR holds no study results."""
    path = Path(path)
    if not (path / DB_NAME).is_file():
        raise InputError(f"{str(path)!r} holds no {DB_NAME}; run `genanalysis run STUDY.toml --out {path}` first")
    with ResultsStore(path, readonly=True) as store:
        raw = store.get_meta("study")
        if raw is None:
            raise InputError(f"{str(path / DB_NAME)!r} records no study spec; rerun the study into it")
        study = parse_study(raw, default_name=path.name)
        rows = store.tasks()
        units = store.get_meta("units", {}) or {}
        n_points = len(store.points())
    return StudyOutput(path, study, rows, units, n_points)


def _rates(out: StudyOutput, quantity: str | None, against: str | None) -> list[Rate]:
    if quantity or against:
        if not (quantity and against):
            raise InputError("--metric and --against go together: name a metric and a swept field")
        if against not in out.study.axis_paths:
            raise InputError(f"--against {against!r} is not a swept field; swept: {', '.join(out.study.axis_paths)}")
        return [Rate(quantity, against)]
    return list(out.study.rates) or default_rates(out.study, out.rows)


def rate_report(out: StudyOutput, *, quantity: str | None = None, against: str | None = None) -> list[RateResult]:
    """Evaluate the study's rates (or the one named) on its finished tasks."""
    return evaluate_rates(out.study, out.rows, _rates(out, quantity, against))


def write_tables(out: StudyOutput, results: list[RateResult]) -> dict[str, Path]:
    """Write ``DIR/results.csv``, ``DIR/results.md`` (tasks and rates); return the paths."""
    cols, values = results_table(out.rows, list(out.study.axis_paths))
    csv_path, md_path = out.path / "results.csv", out.path / "results.md"
    write_csv(csv_path, cols, values)
    done = sum(r.state == "done" for r in out.rows)
    lines = [f"# {out.study.name}: results\n",
             f"{out.n_points} sweep points; {len(out.rows)} in the database ({done} done, "
             f"{len(out.rows) - done} failed). Produced by `genanalysis report {out.path.name}`.\n"]
    if results:
        rcols = ["quantity", "against", "group", "fitted slope", "CI", "fit range", "floor", "n", "predicted",
                 "verdict"]
        rvals = []
        for res in results:
            d, t = res.as_dict(), res.text(".3g")
            floor = f"{d['floor']:g}" if isinstance(d["floor"], float) else d["floor"]
            rvals.append([d["quantity"], d["against"], t["group"], t["slope"] or "", t["ci"] or "",
                          t["fit_range"] or "", floor, d["n_points"], d["predicted"], d["verdict_label"]])
        lines += ["## Rates\n", "Slopes of log-log least-squares fits to the mean over replicates "
                  f"({results[0].fit.method}).\n", markdown_table(rcols, rvals)]
    lines += ["## Tasks\n", "Columns are the raw keys of `results.csv` and the database, with their units; "
              "the table after this one says what each is.\n",
              markdown_table([_heading(c, out.units) for c in cols], values),
              "## Columns\n", markdown_table(["column", "meaning", "unit"], column_legend(cols, out.units))]
    md_path.write_text("\n".join(lines), encoding="utf-8")
    return {"csv": csv_path, "markdown": md_path}


def _unit_words(unit: str | None) -> str:
    if unit is None:
        return "(not declared)"
    return {"1": "dimensionless", TEXT: "(text)"}.get(unit, unit)


def _heading(key: str, units) -> str:
    unit = column_unit(key, units)
    return key if unit in (None, "1", TEXT) else f"{key} ({unit})"


def column_legend(cols, units) -> list[list[str]]:
    """One row per distinct column: its raw key, its name in words and its unit (the first
    ``status`` is the task's state, a later one the result's own)."""
    rows, seen = [], set()
    for key in cols:
        if key in seen:
            continue
        seen.add(key)
        name = "task state (done, or failed: why)" if key == "status" else column_name(key)
        rows.append([f"`{key}`", name, _unit_words(column_unit(key, units))])
    if cols.count("status") > 1:
        rows.append(["`status` (second)", "status the result reports (converged, fit failure, …)", "(text)"])
    return rows
