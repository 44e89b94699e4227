"""reef.toml parsing and parameter resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from reef.errors import InvalidInput, InvalidParameter
from reef.manifest import InvalidManifest, Param, parse_manifest

MODULES = Path(__file__).resolve().parent.parent / "reef" / "library"

SPLIT = """
name = "split"
kind = "data-processor"
description = "Split a table into train and test sets."
entrypoint = "main.py"
[inputs]
data = "dataset"
[outputs]
train = "dataset"
test = "dataset"
[params.test_size]
type = "float"
default = 0.2
min = 0.05
max = 0.9
help = "Share of rows that go to the test set."
[params.label]
type = "string"
default = "label"
help = "Name of the label column."
[params.seed]
type = "int"
default = 0
[params.stratify]
type = "bool"
default = true
[params.mode]
type = "enum"
default = "fast"
choices = ["fast", "slow"]
"""

HEADER = 'name = "m"\nkind = "model"\nentrypoint = "main.py"\n'


def manifest_with(param_toml: str):
    return parse_manifest(HEADER + param_toml)


def test_parse_full_manifest() -> None:
    m = parse_manifest(SPLIT)
    assert (m.name, m.kind, m.entrypoint) == ("split", "data-processor", "main.py")
    assert m.inputs == {"data": "dataset"}
    assert m.outputs == {"train": "dataset", "test": "dataset"}
    assert list(m.params) == ["test_size", "label", "seed", "stratify", "mode"]
    assert m.params["test_size"] == Param(
        "test_size", "float", 0.2, "Share of rows that go to the test set.", 0.05, 0.9
    )
    assert m.params["mode"].choices == ("fast", "slow")
    assert m.requirements == []


def test_to_dict_is_json_ready() -> None:
    import json

    data = parse_manifest(SPLIT).to_dict()
    assert data["params"]["mode"]["choices"] == ["fast", "slow"]
    assert json.loads(json.dumps(data)) == data


def test_resolve_fills_defaults() -> None:
    m = parse_manifest(SPLIT)
    assert m.resolve_params({}) == {
        "test_size": 0.2,
        "label": "label",
        "seed": 0,
        "stratify": True,
        "mode": "fast",
    }
    assert m.resolve_params(None)["seed"] == 0


@pytest.mark.parametrize(
    ("name", "given", "expected"),
    [
        ("seed", "3", 3),
        ("seed", " -7 ", -7),
        ("seed", 5, 5),
        ("seed", 4.0, 4),
        ("test_size", "0.5", 0.5),
        ("test_size", "1e-1", 0.1),
        ("stratify", "true", True),
        ("stratify", "on", True),
        ("stratify", "false", False),
        ("stratify", "OFF", False),
        ("stratify", False, False),
        ("label", "y", "y"),
        ("label", "", ""),
        ("mode", "slow", "slow"),
        ("seed", "", 0),  # an empty form field means the default
    ],
)
def test_coercion(name: str, given: object, expected: object) -> None:
    value = parse_manifest(SPLIT).resolve_params({name: given})[name]
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"foo": 1}, "unknown parameter 'foo' for module split (known: label, mode, seed, "),
        ({"seed": "abc"}, "parameter 'seed' must be an int, got 'abc'"),
        ({"seed": True}, "parameter 'seed' must be an int, got True"),
        ({"seed": 2.5}, "parameter 'seed' must be an int, got 2.5"),
        ({"test_size": 1.5}, "parameter 'test_size' must be <= 0.9, got 1.5"),
        ({"test_size": "0.01"}, "parameter 'test_size' must be >= 0.05, got 0.01"),
        ({"test_size": "nan"}, "parameter 'test_size' must be a float, got 'nan'"),
        ({"test_size": True}, "parameter 'test_size' must be a float, got True"),
        ({"stratify": "maybe"}, "parameter 'stratify' must be a bool, got 'maybe'"),
        ({"stratify": 1}, "parameter 'stratify' must be a bool, got 1"),
        ({"label": 3}, "parameter 'label' must be a string, got 3"),
        ({"mode": "medium"}, "parameter 'mode' must be one of fast, slow, got 'medium'"),
    ],
)
def test_bad_parameters(given: dict, message: str) -> None:
    with pytest.raises(InvalidParameter) as err:
        parse_manifest(SPLIT).resolve_params(given)
    assert message in str(err.value)
    assert isinstance(err.value, InvalidInput)


def test_required_parameter() -> None:
    m = manifest_with('[params.x]\ntype = "int"\nrequired = true\n')
    assert m.params["x"].required
    with pytest.raises(InvalidParameter, match="missing required parameter 'x'"):
        m.resolve_params({})
    with pytest.raises(InvalidParameter, match="missing required parameter 'x'"):
        m.resolve_params({"x": ""})
    assert m.resolve_params({"x": "2"}) == {"x": 2}
    # a param without a default is required
    assert manifest_with('[params.y]\ntype = "string"\n').params["y"].required


def test_params_must_be_a_dict() -> None:
    with pytest.raises(InvalidParameter, match="must be an object"):
        parse_manifest(SPLIT).resolve_params(["seed", 1])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name = ", "not valid TOML"),
        ('kind = "model"\nentrypoint = "main.py"\n', "missing required key 'name'"),
        ('name = "m"\nentrypoint = "main.py"\n', "missing required key 'kind'"),
        ('name = "m"\nkind = "model"\n', "missing required key 'entrypoint'"),
        ('name = "m"\nkind = "trainer"\nentrypoint = "main.py"\n', "unknown kind 'trainer'"),
        ('name = "M y"\nkind = "model"\nentrypoint = "main.py"\n', "name 'M y' must be"),
        ('name = 3\nkind = "model"\nentrypoint = "main.py"\n', "'name' must be a string"),
        ('name = "m"\nkind = "model"\nentrypoint = "../x.py"\n', "must be a relative path"),
        ('name = "m"\nkind = "model"\nentrypoint = "main.sh"\n', "must be a .py file"),
        (HEADER + 'inputz = {a = "dataset"}\n', "unknown key 'inputz'"),
        (HEADER + '[inputs]\na = "table"\n', "inputs.a: unknown kind 'table'"),
        (HEADER + '[outputs]\nb = "picture"\n', "outputs.b: unknown kind 'picture'"),
        (HEADER + 'requirements = "numpy"\n', "'requirements' must be a list of strings"),
        (HEADER + "[params]\nx = 3\n", "params.x must be a table"),
        (HEADER + '[params.x]\ntype = "double"\ndefault = 1\n', "params.x: unknown type 'double'"),
        (HEADER + "[params.x]\ndefault = 1\n", "params.x: unknown type None"),
        (HEADER + '[params.x]\ntype = "int"\ndefault = 1\nmn = 0\n', "unknown key 'mn'"),
        (HEADER + '[params.x]\ntype = "int"\ndefault = 1.5\n', "bad default: parameter 'x'"),
        (HEADER + '[params.x]\ntype = "int"\ndefault = "3"\n', "must be an int, got '3'"),
        (HEADER + '[params.x]\ntype = "int"\ndefault = true\n', "must be an int, got True"),
        (HEADER + '[params.x]\ntype = "bool"\ndefault = "yes"\n', "must be a bool, got 'yes'"),
        (
            HEADER + '[params.x]\ntype = "float"\ndefault = 2.0\nmax = 1.0\n',
            "params.x: bad default: parameter 'x' must be <= 1.0, got 2.0",
        ),
        (
            HEADER + '[params.x]\ntype = "int"\ndefault = 1\nmin = 0.5\n',
            "'min' must be an int, got 0.5",
        ),
        (
            HEADER + '[params.x]\ntype = "int"\ndefault = 1\nmin = 3\nmax = 2\n',
            "min (3) is greater",
        ),
        (HEADER + '[params.x]\ntype = "string"\ndefault = "a"\nmin = 1\n', "only applies to int"),
        (HEADER + '[params.x]\ntype = "enum"\ndefault = "a"\n', "an enum needs 'choices'"),
        (
            HEADER + '[params.x]\ntype = "enum"\ndefault = "c"\nchoices = ["a", "b"]\n',
            "must be one of a, b, got 'c'",
        ),
        (HEADER + '[params.x]\ntype = "int"\nrequired = false\n', "needs a 'default'"),
        (
            HEADER + '[params.x]\ntype = "int"\nrequired = true\ndefault = 1\n',
            "cannot have a 'default'",
        ),
    ],
)
def test_bad_manifests(text: str, message: str) -> None:
    with pytest.raises(InvalidManifest) as err:
        parse_manifest(text)
    assert message in str(err.value)
    assert isinstance(err.value, InvalidInput)


def test_float_default_from_toml_int() -> None:
    m = manifest_with('[params.lr]\ntype = "float"\ndefault = 1\n')
    assert m.params["lr"].default == 1.0
    assert isinstance(m.params["lr"].default, float)
    assert m.resolve_params({"lr": 2}) == {"lr": 2.0}
    assert isinstance(m.resolve_params({"lr": 2})["lr"], float)


@pytest.mark.parametrize("path", sorted(MODULES.glob("*/reef.toml")), ids=lambda p: p.parent.name)
def test_builtin_module_manifests_parse(path: Path) -> None:
    manifest = parse_manifest(path.read_text())
    assert manifest.name == path.parent.name
    assert (path.parent / manifest.entrypoint).is_file()
    assert (path.parent / "README.md").is_file()
    manifest.resolve_params({})  # every default is valid


def test_builtin_modules_are_there() -> None:
    names = {p.parent.name for p in MODULES.glob("*/reef.toml")}
    assert {"split", "mlp-classifier", "evaluate"} <= names


def test_columns_param_takes_a_list_or_comma_separated_names() -> None:
    manifest = parse_manifest(
        'name = "m"\nkind = "model"\nentrypoint = "main.py"\ntask = "classification"\n'
        '[inputs]\ntrain = "dataset"\n[params.exclude]\ntype = "columns"\ndefault = []\n'
    )
    assert manifest.task == "classification"
    assert manifest.resolve_params({}) == {"exclude": []}
    assert manifest.resolve_params({"exclude": "id, notes ,"}) == {"exclude": ["id", "notes"]}
    assert manifest.resolve_params({"exclude": ["a"]}) == {"exclude": ["a"]}
    assert manifest.params["exclude"].input == "train"
    for bad, message in [([1], "must be a list of column names"), ("a, a", "names a column twice")]:
        with pytest.raises(InvalidParameter, match=message):
            manifest.resolve_params({"exclude": bad})
    with pytest.raises(InvalidManifest, match="unknown task 'clustering'"):
        parse_manifest('name = "m"\nkind = "model"\nentrypoint = "main.py"\ntask = "clustering"\n')


@pytest.mark.parametrize("kind", ["data-processor", "model", "evaluator", "visualization"])
def test_module_new_gives_a_template_of_the_kind_asked(tmp_path, kind):
    """`reef module new --kind KIND`: the manifest says KIND and has that kind's ports."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "reef.cli", "module", "new", "m", "--kind", kind, "--dir", tmp_path],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    manifest = parse_manifest((tmp_path / "m" / "reef.toml").read_text())
    ports = {
        "data-processor": ({"data": "dataset"}, {"data": "dataset"}),
        "model": ({"train": "dataset"}, {"model": "model"}),
        "evaluator": ({"model": "model", "test": "dataset"}, {}),
        "visualization": ({"data": "dataset"}, {}),
    }
    assert manifest.kind == kind and (manifest.inputs, manifest.outputs) == ports[kind]
    compile((tmp_path / "m" / "main.py").read_text(), "main.py", "exec")


BASE = 'name = "m"\nkind = "data-processor"\nentrypoint = "main.py"\n'
PORTS = '[inputs]\ndata = "dataset"\n[outputs]\nout = "dataset"\nmodel = "model"\n'


@pytest.mark.parametrize(
    ("columns", "fragment"),
    [
        ('[columns.nope]\nfrom = "data"', "no dataset output 'nope'"),
        ('[columns.model]\nfrom = "data"', "no dataset output 'model'"),
        ('[columns.out]\nfrom = "other"', "'from' must name a dataset input"),
        ('[columns.out]\nkeep = ["a"]', "from, drop and add only"),
        ('[columns.out]\nadd = {a = "float"}', "'add' maps column names to numeric, string"),
    ],
)
def test_bad_output_columns_are_named(columns, fragment):
    with pytest.raises(InvalidManifest, match=fragment):
        parse_manifest(BASE + PORTS + columns)


def test_output_columns_follow_the_input_and_the_parameters():
    from reef.column_flow import derive

    text = '[columns.out]\nfrom = "data"\ndrop = ["{label}"]\nadd = {"{label}_code" = "numeric"}'
    spec = parse_manifest(BASE + PORTS + text).columns["out"]
    given = {"data": {"a": "double", "y": "string"}}
    assert derive(spec, {"label": "y"}, given) == {"a": "double", "y_code": "double"}
    assert derive(spec, {"label": "y"}, {"data": None}) is None  # unknown upstream
