"""The operations generator against a small fixture spec: signatures say exactly what the spec says.

The fixture (tests/fixtures/operations_spec.yaml) holds one of each kind: a path parameter declared on the path
item, a required query parameter, a required and an optional enum, an inline enum, a list, a nullable
date-time, a parameter with a server default, a header the client sets itself, and a body.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "operations_spec.yaml"
IMPORT_MODELS = "from tocsin_client.generated import models\n"


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_client_operations", REPO / "tools" / "gen_client_operations.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def source() -> str:
    return str(load_generator().generate(FIXTURE))


@pytest.fixture(scope="module")
def fixture_models(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """The models datamodel-codegen makes of the fixture, so the enum names are the ones it really picks."""
    out = tmp_path_factory.mktemp("models") / "fixture_models.py"
    codegen = Path(sys.executable).with_name("datamodel-codegen")
    command = [str(codegen), "--input", str(FIXTURE), "--input-file-type", "openapi"]
    command += ["--output-model-type", "msgspec.Struct", "--target-python-version", "3.11", "--output", str(out)]
    subprocess.run(command, check=True, capture_output=True)
    spec = importlib.util.spec_from_file_location("fixture_models", out)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def signatures(source: str, class_name: str) -> dict[str, str]:
    """``name -> "(args) -> returns"`` for every method of ``class_name`` in the generated source."""
    tree = ast.parse(source)
    [cls] = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == class_name]
    return {
        node.name: f"({ast.unparse(node.args)}) -> {ast.unparse(node.returns) if node.returns else None}"
        for node in cls.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


PUT_THING = (
    "(self, thing_id: int, body: models.ThingBody, *, owner: str, colour: models.Colour, "
    "size: Literal['small', 'large'] | None=None, tags: list[str] | None=None, limit: int | None=None, "
    "since: datetime | None=None) -> models.Thing"
)
LIST_THINGS = "(self, *, colour: models.Colour | None=None) -> None"


@pytest.mark.parametrize("class_name", ["SyncOperations", "AsyncOperations"])
def test__generate__signatures_follow_the_spec(source: str, class_name: str) -> None:
    assert signatures(source, class_name) == {"put_thing": PUT_THING, "list_things": LIST_THINGS}


def test__generate__imports_literal_only_when_used(source: str) -> None:
    assert "from typing import Any, Literal, Protocol\n" in source
    assert load_generator().generate(FIXTURE) == source  # deterministic: ./codegen.sh --check compares bytes
    committed = (REPO / "client" / "tocsin_client" / "generated" / "operations.py").read_text()
    assert ("Literal[" in committed) == ("from typing import Any, Literal, Protocol\n" in committed)


def test__generate__names_only_models_datamodel_codegen_makes(source: str, fixture_models: ModuleType) -> None:
    tree = ast.parse(source)
    used = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "models"
    }

    assert used == {"Colour", "Thing", "ThingBody"}
    for name in used:
        assert hasattr(fixture_models, name), name
    assert issubclass(fixture_models.Colour, str)
    assert {member.value for member in fixture_models.Colour} == {"red", "green"}


class Recorded:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        self.calls.append({"method": method, "path": path, **kwargs})


def test__generated_calls__require_what_the_spec_requires(source: str, fixture_models: ModuleType) -> None:
    assert IMPORT_MODELS in source
    namespace: dict[str, Any] = {"__name__": "fixture_operations", "models": fixture_models}
    exec(compile(source.replace(IMPORT_MODELS, ""), "fixture_operations.py", "exec"), namespace)
    client = type("FixtureClient", (Recorded, namespace["SyncOperations"]), {})()
    body = fixture_models.ThingBody(name="lamp")

    client.put_thing(7, body, owner="ann", colour=fixture_models.Colour.red)
    with pytest.raises(TypeError, match="owner"):
        client.put_thing(7, body, colour=fixture_models.Colour.red)

    [call] = client.calls
    assert call["method"] == "PUT"
    assert call["path"] == "/things/7"
    assert call["operation"] == "putThing"
    assert call["params"]["owner"] == "ann"
    assert call["params"]["colour"] is fixture_models.Colour.red
    assert call["params"]["limit"] is None  # absent: the server's default (100) applies
    signature = inspect.signature(namespace["SyncOperations"].put_thing, eval_str=True, globals=namespace)
    assert signature.parameters["colour"].annotation is fixture_models.Colour
    assert signature.parameters["owner"].default is inspect.Parameter.empty
    assert signature.parameters["size"].default is None
