"""One TOML reader for every spec (study, training set, fit): bad files are one line naming
the kind of spec, the path and the reason."""

from __future__ import annotations

import pytest

from genanalysis.exceptions import InputError
from genanalysis.fit import FitSpec
from genanalysis.sweep import load_study
from genanalysis.tomlutil import read_toml
from genanalysis.trainingset import TrainingSetSpec

READERS = [(load_study, "study spec"), (TrainingSetSpec.from_toml, "training-set spec"),
           (FitSpec.from_toml, "fit spec")]


@pytest.mark.parametrize("reader, what", READERS)
@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist"),
    ("directory", "is a directory"),
    ("bad toml", "is not valid TOML"),
    ("not utf-8", "not UTF-8"),
])
def test_bad_spec_files_are_one_line(tmp_path, reader, what, case, message):
    path = tmp_path / "spec.toml"
    if case == "directory":
        path.mkdir()
    elif case == "bad toml":
        path.write_text("[study\nname = 1\n")
    elif case == "not utf-8":
        path.write_bytes(b"name = '\xff'\n")
    with pytest.raises(InputError) as exc:
        reader(path)
    text = str(exc.value)
    assert what in text and message in text and str(path) in text and "\n" not in text


def test_a_valid_file_is_its_table(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text('seed = 3\n[study]\ntask = "toy.probe"\n')
    assert read_toml(path, "study spec") == {"seed": 3, "study": {"task": "toy.probe"}}
