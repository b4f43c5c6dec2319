"""The commands the docs show still exist: every ``genanalysis ...`` line of a code block in
docs/*.md and README.md (indented or fenced; synopses with ``[...]`` or ``a|b`` aside) is
parsed by the real argument parser without being run, so a documented flag that no longer
exists fails here; the cheap ones (:data:`CHEAP`) are also run, in a temporary directory,
and must exit 0."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from genanalysis.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]

#: documented commands cheap enough to run (seconds), as they appear in the docs
CHEAP = {
    "genanalysis defect --potential builtin:W --lattice bcc --defect interstitial:octahedral --size 2 --stability --json",
}


def _code_lines(text: str):
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced or line.startswith("    "):
            yield line.strip()


def documented_commands(synopses: bool = False) -> list[tuple[str, str]]:
    """(file, command line) of every documented invocation (continuations joined); with
    ``synopses``, the synopsis lines (``[--flag X]``, ``a|b``) instead."""
    out = []
    for path in DOCS:
        lines = list(_code_lines(path.read_text(encoding="utf-8")))
        i = 0
        while i < len(lines):
            line = lines[i]
            while line.endswith("\\") and i + 1 < len(lines):
                i += 1
                line = line[:-1].rstrip() + " " + lines[i]
            i += 1
            if not line.startswith("genanalysis "):
                continue
            if bool(re.search(r"[\[\]|]|…|\.\.\.", line.split("#")[0])) == synopses:
                out.append((path.name, line))
    return out


COMMANDS = documented_commands()
SYNOPSES = documented_commands(synopses=True)


def _argv(line: str) -> list[str]:
    words = shlex.split(line, comments=True)
    for stop in (">", ">>", "2>", "|"):
        if stop in words:
            words = words[: words.index(stop)]
    return [re.sub(r"\$(\w+)", r"\1", w) for w in words[1:]]  # shell variables stand for values


def test_the_docs_show_commands_of_every_kind():
    kinds = {_argv(line)[0] for _, line in COMMANDS}
    assert {"defect", "evaluate", "run", "report", "plot", "trainingset", "calibrate", "bench"} <= kinds
    assert CHEAP <= {line for _, line in COMMANDS}, "a cheap command is no longer in the docs"


@pytest.mark.parametrize("where, line", COMMANDS, ids=[f"{f}:{c[12:60]}" for f, c in COMMANDS])
def test_documented_command_parses(where, line, capsys):
    parser = build_parser()
    try:
        args = parser.parse_args(_argv(line))
    except SystemExit as exc:
        pytest.fail(f"{where}: `{line}` does not parse: {capsys.readouterr().err.strip()} (exit {exc.code})")
    assert getattr(args, "func", None) is not None, f"{where}: `{line}` names no command"


def _subparser(words: list[str]):
    import argparse

    parser = build_parser()
    for w in words:
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if sub is None or w not in sub.choices:
            break
        parser = sub.choices[w]
    return parser


@pytest.mark.parametrize("where, line", SYNOPSES, ids=[f"{f}:{c[12:60]}" for f, c in SYNOPSES])
def test_documented_synopsis_names_existing_flags(where, line):
    # a synopsis is not a command line; its flags must still be the command's own
    words = line.split()[1:3]
    parser = _subparser([w for w in words if re.fullmatch(r"[a-z]+", w)])
    known = {o for a in parser._actions for o in a.option_strings}
    flags = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", line))
    assert flags <= known, f"{where}: `{line}` shows {sorted(flags - known)}, which `{parser.prog}` does not have"


@pytest.mark.parametrize("line", sorted(CHEAP))
def test_cheap_documented_command_runs(line, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with contextlib.redirect_stdout(io.StringIO()) as out:
        code = main(_argv(line))
    assert code == 0, out.getvalue()[-2000:]


# -- results.md: every metric with its unit and a name in words ---------------------------------

def test_every_metric_of_the_built_in_kinds_has_a_name_and_a_unit():
    from genanalysis.sweep.labels import LABELS
    from genanalysis.sweep.registry import get_task_kind

    for kind in ("generalisation", "experiment.surrogate", "experiment.evaluate"):
        units = get_task_kind(kind).units
        unnamed = sorted(k for k in units if "." not in k and k not in LABELS)
        assert not unnamed, f"{kind}: metrics without a name in genanalysis/sweep/labels.py: {unnamed}"


def test_results_md_gives_each_column_its_words_and_unit(tmp_path, capsys):
    import tomli_w

    from genanalysis.sweep.outputs import column_legend

    toy = {"study": {"name": "toy", "task": "toy.series", "imports": ["toykinds"]}, "trainingset": {"size": 4},
           "experiment": {"p": 2.0}, "sweep": {"trainingset.size": [4, 8]}}
    (tmp_path / "t.toml").write_text(tomli_w.dumps(toy))
    assert main(["run", str(tmp_path / "t.toml"), "--out", str(tmp_path / "r"), "--workers", "0", "--quiet"]) == 0
    assert main(["report", str(tmp_path / "r")]) == 0
    md = (tmp_path / "r" / "results.md").read_text()
    header = (tmp_path / "r" / "results.csv").read_text().splitlines()[0].split(",")
    legend = md.split("## Columns")[1]
    for key in header:
        assert f"| `{key}` |" in legend, key  # the raw key, kept for scripts
    assert "| `wall_s` | task wall time | s |" in legend
    rows = column_legend(["point", "status", "error_energy_norm", "status", "nosuch"], {"error_energy_norm": "Å"})
    assert rows[2] == ["`error_energy_norm`", "simulation error ‖D(ū^ML − ū)‖", "Å"]
    assert rows[3] == ["`nosuch`", "nosuch", "(not declared)"]
    assert rows[-1][0] == "`status` (second)"
