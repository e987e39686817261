"""The contract's server flags, parsed once for every shell wrapper (images/base/contract.sh)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness import registry

LIBRARY = registry.images_dir() / "base" / "contract.sh"
USAGE = (
    "usage: server-mtls --cert FILE --key FILE [--root-ca FILE] [--require] [--tls-max 1.2|1.3] "
    "[--crl FILE] [--ca-names FILE|none] [--auth-path PATH] [--port N]"
)
#: A wrapper as the shipped ones are: its version line, the library, then what it got.
WRAPPER = """
set -u
contract_version() { echo "toy 1.0"; }
. "$LIBRARY"
contract_parse "$@"
for v in cert key root_ca crl ca_names ca_names_file require tls_max tls_given auth_path auth_path_set port; do
  printf '%s=%s\\n' "$v" "${!v}"
done
"""


def _program(script: str, name: str, tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """A wrapper ``script`` run as ``name`` with the base image's parser (LIBRARY), no stack."""
    return subprocess.run(
        ["bash", "-c", script, name, *argv],
        env={"LIBRARY": str(LIBRARY), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )


def _run(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return _program(WRAPPER, "server-mtls", tmp_path, *argv)


@pytest.fixture
def files(tmp_path: Path) -> Path:
    for name in ("cert.pem", "key.pem", "ca.pem", "crl.pem", "names.pem"):
        (tmp_path / name).write_text("x\n")
    return tmp_path


def _values(out: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in out.splitlines())


def test_the_defaults_leave_the_stack_its_own(files: Path) -> None:
    got = _run(files, "--cert", "cert.pem", "--key", "key.pem")
    assert got.returncode == 0, got.stderr
    values = _values(got.stdout)
    assert values["port"] == "9443" and values["require"] == "0"
    assert values["tls_max"] == "" and values["tls_given"] == "0"  # the stack's own maximum
    assert values["auth_path_set"] == "0" and values["root_ca"] == values["ca_names"] == ""


def test_every_flag_in_both_spellings(files: Path) -> None:
    got = _run(
        files,
        "--cert=cert.pem",
        "--key",
        "key.pem",
        "--root-ca=ca.pem",
        "--crl",
        "crl.pem",
        "--ca-names=names.pem",
        "--require",
        "--tls-max=1.2",
        "--auth-path",
        "/admin",
        "--port=10001",
    )
    assert got.returncode == 0, got.stderr
    assert _values(got.stdout) == {
        "cert": "cert.pem",
        "key": "key.pem",
        "root_ca": "ca.pem",
        "crl": "crl.pem",
        "ca_names": "names.pem",
        "ca_names_file": "names.pem",
        "require": "1",
        "tls_max": "1.2",
        "tls_given": "1",
        "auth_path": "/admin",
        "auth_path_set": "1",
        "port": "10001",
    }


def test_ca_names_none_is_no_file(files: Path) -> None:
    got = _run(files, "--cert", "cert.pem", "--key", "key.pem", "--ca-names", "none")
    assert got.returncode == 0, got.stderr
    assert _values(got.stdout)["ca_names"] == "none" and _values(got.stdout)["ca_names_file"] == ""


@pytest.mark.parametrize(
    ("argv", "status", "words"),
    [
        (("--bogus",), 2, "unknown option --bogus"),
        (("--cert",), 2, "option --cert needs a value"),
        (("--key", "key.pem"), 1, "missing required option --cert"),
        (("--cert", "cert.pem"), 1, "missing required option --key"),
        (("--tls-max", "1.1"), 2, "--tls-max must be 1.2 or 1.3, got '1.1'"),
        (("--port", "x"), 2, "--port must be a number, got 'x'"),
        (("--port", "70000"), 2, "--port must be 1-65535, got 70000"),
        (("--auth-path", "admin"), 2, "--auth-path must be a URL path starting with /, got 'admin'"),
        (("--ca-names", ""), 2, "--ca-names needs FILE or none"),
    ],
)
def test_a_usage_error_names_the_flag_and_shows_the_usage(
    files: Path, argv: tuple[str, ...], status: int, words: str
) -> None:
    full = argv if argv[0] in ("--key", "--cert") else ("--cert", "cert.pem", "--key", "key.pem", *argv)
    got = _run(files, *full)
    assert (got.returncode, got.stdout) == (status, "")
    first, *rest = got.stderr.splitlines()
    assert first == f"server-mtls: {words}"
    assert rest == ([] if status == 1 else [USAGE])


@pytest.mark.parametrize("flag", ["--cert", "--key", "--root-ca", "--crl", "--ca-names"])
def test_a_file_that_cannot_be_read_is_one_line(files: Path, flag: str) -> None:
    argv = {"--cert": "cert.pem", "--key": "key.pem", flag: "/nonexistent/none.pem"}
    got = _run(files, *(part for pair in argv.items() for part in pair))
    assert got.returncode == 2
    assert got.stderr == f"server-mtls: cannot read {flag} /nonexistent/none.pem\n"


def test_help_and_version_exit_0_before_any_check(tmp_path: Path) -> None:
    assert _run(tmp_path, "--version").stdout == "toy 1.0\n"
    helped = _run(tmp_path, "--help")
    assert helped.returncode == 0 and helped.stdout.startswith("usage: server-mtls --cert FILE --key FILE")


def test_every_shell_wrapper_parses_with_the_library() -> None:
    """The flag parser lives once: no shell wrapper of a server keeps a copy of it."""
    programs = [p for p in registry.images_dir().glob("**/server-mtls") if p.is_file()]
    wrappers = [p for p in programs if p.read_text().startswith("#!/bin/bash")]
    assert len(wrappers) == 5, wrappers  # apache, haproxy, lighttpd, nginx, nss
    for wrapper in wrappers:
        text = wrapper.read_text()
        assert ". /usr/local/lib/mtls-harness/contract.sh" in text and 'contract_parse "$@"' in text, wrapper
        assert "--cert|--key|--root-ca" not in text, wrapper


CLIENT_USAGE = "usage: request-mtls [--cert FILE --key FILE] [--root-ca FILE] [--url URL]"
#: A client wrapper as the shipped ones are, printing what the library gave it.
CLIENT = """
set -u
contract_version() { echo "toy client 1.0"; }
. "$LIBRARY"
contract_client_parse "$@"
for v in cert key root_ca url authority host port path; do printf '%s=%s\\n' "$v" "${!v}"; done
"""


def _client(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return _program(CLIENT, "request-mtls", tmp_path, *argv)


@pytest.mark.parametrize(
    ("url", "host", "port", "path"),
    [
        (None, "localhost", "9443", "/"),
        ("https://localhost:10001/admin?x=1", "localhost", "10001", "/admin?x=1"),
        ("https://example.test", "example.test", "443", "/"),
        ("https://[::1]:8443/", "::1", "8443", "/"),
        ("https://[::1]", "::1", "443", "/"),
    ],
)
def test_a_clients_url_is_taken_apart_once(tmp_path: Path, url: str | None, host: str, port: str, path: str) -> None:
    got = _client(tmp_path, *(("--url", url) if url else ()))
    assert got.returncode == 0, got.stderr
    values = _values(got.stdout)
    assert (values["host"], values["port"], values["path"]) == (host, port, path)


def test_a_client_takes_its_files_in_both_spellings(tmp_path: Path) -> None:
    got = _client(tmp_path, "--cert=c.pem", "--key", "k.pem", "--root-ca=ca.pem")
    assert got.returncode == 0, got.stderr
    values = _values(got.stdout)
    assert (values["cert"], values["key"], values["root_ca"]) == ("c.pem", "k.pem", "ca.pem")


@pytest.mark.parametrize(
    ("argv", "status", "words"),
    [
        (("--bogus",), 2, "unknown option --bogus"),
        (("--url",), 2, "option --url needs a value"),
        (("--cert", "c.pem"), 1, "missing required option --key"),
        (("--key", "k.pem"), 1, "missing required option --cert"),
        (("--url", "http://localhost:9443"), 2, "--url must be https://HOST[:PORT][/PATH], got http://localhost:9443"),
        (("--url", "https://"), 2, "--url must be https://HOST[:PORT][/PATH], got https://"),
        (("--url", "https://localhost:x/"), 2, "bad port in --url https://localhost:x/"),
    ],
)
def test_a_clients_usage_error_names_the_flag(tmp_path: Path, argv: tuple[str, ...], status: int, words: str) -> None:
    got = _client(tmp_path, *argv)
    assert (got.returncode, got.stdout) == (status, "")
    first, *rest = got.stderr.splitlines()
    assert first == f"request-mtls: {words}"
    assert rest == ([] if status == 1 else [CLIENT_USAGE])


def test_every_shell_client_wrapper_parses_with_the_library() -> None:
    programs = [p for p in registry.images_dir().glob("*/request-mtls") if p.is_file()]
    wrappers = [p for p in programs if p.read_text().startswith("#!/bin/bash")]
    assert sorted(p.parent.name for p in wrappers) == ["boringssl", "gnutls", "nss"]
    for wrapper in wrappers:
        text = wrapper.read_text()
        assert 'contract_client_parse "$@"' in text and "--cert|--key|--root-ca|--url)" not in text, wrapper
