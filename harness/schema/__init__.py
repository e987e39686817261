"""The results.json schema (schema 2) as a file, and its one validator (SPEC §10)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from harness.errors import UsageError

SCHEMA_FILE = Path(__file__).resolve().parent / "results.schema.json"


@cache
def results_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())
    return schema


def validate_results(document: object, name: str = "results.json") -> None:
    """A UsageError, one line naming the first problem and where, unless ``document`` is schema 2."""
    import jsonschema

    if not isinstance(document, dict) or document.get("schema") != 2:
        found = document.get("schema") if isinstance(document, dict) else type(document).__name__
        raise UsageError(f"{name} is not a results.json of schema 2 (found schema {found!r})")
    validator = jsonschema.Draft202012Validator(results_schema())
    error = next(iter(sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))), None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top)"
        raise UsageError(f"{name} does not follow results schema 2 at {where}: {error.message[:200]}")
