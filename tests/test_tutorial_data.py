"""The transcript data against the user's tutorial text, so the two cannot drift."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from harness.tutorial import LISTENING, TRANSCRIPT, in_container

CANDIDATES = [
    Path(os.environ.get("MTLS_TUTORIAL", "/nonexistent")),
    Path(__file__).resolve().parents[2] / "shared" / "reference" / "mutual-tls-tutorial.txt",
]


def tutorial_text() -> str:
    for path in CANDIDATES:
        if path.is_file():
            return path.read_text()
    pytest.skip("the tutorial text is not here: set MTLS_TUTORIAL to mutual-tls-tutorial.txt")


def flatten(text: str) -> str:
    """The tutorial's shell continuations (``\\`` and ``>``) folded into single lines."""
    return " ".join(re.sub(r"\\\n>?", " ", text).split())


def test_every_output_line_is_the_tutorials() -> None:
    lines = set(tutorial_text().splitlines())
    for run in TRANSCRIPT:
        for step in run.steps:
            assert step.output in lines, step.output
    assert f"# {LISTENING}" in lines


def test_every_command_is_the_tutorials() -> None:
    flat = flatten(tutorial_text())
    for run in TRANSCRIPT:
        assert " ".join(run.argv) in flat
        for step in run.steps:
            assert " ".join(step.argv) in flat, step.argv


def test_paths_map_onto_the_certs_mount() -> None:
    assert in_container(("curl", "--cacert", "../tls-certs/root-ca-cert.pem")) == (
        "curl",
        "--cacert",
        "/certs/tls-certs/root-ca-cert.pem",
    )
