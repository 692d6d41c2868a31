"""The spec files themselves: valid OpenAPI 3.1, complete, versioned consistently, released files frozen."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from openapi_spec_validator import validate
from tocsin_server.web.query_rules import declared_query_parameters
from tocsin_server.web.spec import load_spec, spec_dir, spec_path, spec_versions
from tocsin_server.web.versioning import (
    LATEST,
    VERSION_CHANGES,
    VERSION_HEADER,
    VERSIONS,
    QueryParameterAdded,
    ResponseFieldAdded,
)

METHODS = ("get", "put", "post", "patch", "delete")


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, m, item[m]) for path, item in document["paths"].items() for m in METHODS if m in item]


def test__code_and_files_list_the_same_versions() -> None:
    assert spec_versions() == VERSIONS


@pytest.mark.parametrize("version", VERSIONS)
def test__file_is_valid_openapi_31(version: str) -> None:
    document = load_spec(version)
    validate(document)
    assert document["openapi"].startswith("3.1")
    assert document["info"]["version"] == version


@pytest.mark.parametrize("version", VERSIONS)
def test__every_operation_declares_the_version_header_and_echoes_it(version: str) -> None:
    document = load_spec(version)
    header = document["components"]["parameters"]["ApiVersion"]
    assert header["name"] == VERSION_HEADER
    assert header["schema"]["enum"] == [version]
    if version == LATEST:
        assert header["required"] is False  # absent means the latest
    # An older file keeps what it said when it was released (frozen); the header still selects it.
    operation_ids = []
    for path, method, operation in _operations(document):
        operation_ids.append(operation["operationId"])
        refs = [p.get("$ref") for p in operation.get("parameters", [])]
        assert "#/components/parameters/ApiVersion" in refs, f"{method} {path}"
        assert operation.get("description"), f"{method} {path} has no description"
        for status, response in operation["responses"].items():
            if "$ref" not in response:
                assert VERSION_HEADER in response.get("headers", {}), f"{method} {path} {status}"
    assert len(operation_ids) == len(set(operation_ids))


@pytest.mark.parametrize("version", VERSIONS)
def test__every_schema_has_a_description_and_examples(version: str) -> None:
    for name, schema in load_spec(version)["components"]["schemas"].items():
        assert schema.get("description"), f"{name} has no description"
        assert schema.get("examples"), f"{name} has no examples"


@pytest.mark.parametrize("version", VERSIONS)
def test__every_error_is_problem_json(version: str) -> None:
    for path, method, operation in _operations(load_spec(version)):
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert response["$ref"].startswith("#/components/responses/"), f"{method} {path} {status}"
    for name, response in load_spec(version)["components"]["responses"].items():
        assert list(response["content"]) == ["application/problem+json"], name


def test__released_files_are_frozen() -> None:
    manifest = spec_dir() / "released.sha256"
    recorded = dict(line.split()[::-1] for line in manifest.read_text().splitlines() if line.strip())
    # The newest version may still be open (it changes until a release records its hash); every other is released.
    released = {f"versions/{v}.yaml" for v in VERSIONS[:-1]}
    assert set(recorded) - {f"versions/{LATEST}.yaml"} == released, "every served version but the newest is released"
    for name, sha in recorded.items():
        actual = hashlib.sha256((spec_dir() / name).read_bytes()).hexdigest()
        assert actual == sha, f"{name} changed after release: add a new dated version instead"


def test__spec_path_points_into_openapi() -> None:
    assert spec_path(LATEST).name == f"{LATEST}.yaml"


def test__declared_query_parameters_and_fields_exist_in_the_latest_file() -> None:
    """A QueryParameterAdded or ResponseFieldAdded naming nothing real (a typo) would leave older clients
    served the new behaviour; each must name a parameter or field of the latest file."""
    declared = declared_query_parameters(LATEST)
    schemas = load_spec(LATEST)["components"]["schemas"]
    for entry in VERSION_CHANGES:
        for change in entry.changes:
            if isinstance(change, QueryParameterAdded):
                assert change.name in declared[change.operation_id], change
            if isinstance(change, ResponseFieldAdded):
                for schema in change.schemas:
                    assert change.field in schemas[schema]["properties"], change
                assert set(change.operation_ids) <= set(declared), change
