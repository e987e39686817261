"""Throwaway implementation folders for tests: a stack is a folder plus data, nothing else."""

from __future__ import annotations

import json
from pathlib import Path

from harness import registry


def write_impl(root: Path, name: str, manifest: str, recordings: dict[str, dict[str, object]] | None = None) -> Path:
    """``root/name/impl.toml`` (and ``recorded/*.json``); returns the folder."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "impl.toml").write_text(manifest)
    for cell_id, recording in (recordings or {}).items():
        (folder / "recorded").mkdir(exist_ok=True)
        (folder / "recorded" / f"{cell_id}.json").write_text(json.dumps({"cell": cell_id, **recording}))
    return folder


#: A server and a client that speak the contract, with their own words and one difference.
TOY_SERVER = """
name = "toy"
stack = "Toy TLS 1.0"
roles = ["server", "client"]
image = "example/toy:1"
[version]
argv = ["toy", "--version"]
[server]
unsupported = { crl = "Toy TLS has no revocation checking (toy/README, 'CRLs')" }
[[server.reasons]]
reason = '^no certificate$'
verdict = "reported:no-cert"
[[server.reasons]]
reason = '^issuer unknown'
verdict = "reported:untrusted"
[[server.reasons]]
reason = '^too old'
verdict = "reported:expired"
[[server.reasons]]
reason = '.'
verdict = "reported:other"
[client]
floor = ["toy-client", "--help"]
[[client.errors]]
code = '^ALERT$'
message = 'peer said (?P<alert>[a-z ]+)'
verdict = "server-rejected:{alert}"
[[client.errors]]
code = '^UNTRUSTED$'
verdict = "client-rejected:untrusted"
[[expect]]
scenario = ["require-expired-client-cert", "require-not-yet-valid-client-cert"]
role = "server"
verdict = "server-rejected:bad_certificate"
rule = "Toy TLS answers every rejected certificate with bad_certificate"
source = "https://example.invalid/toy/src/verify.c#L42"
"""


def toy_registry(tmp_path: Path) -> registry.Registry:
    """The shipped implementations are not read: only the throwaway ``toy`` and a second client."""
    write_impl(tmp_path, "toy", TOY_SERVER)
    write_impl(
        tmp_path,
        "other",
        'name = "other"\nstack = "Other 2"\nroles = ["client"]\nimage = "example/other"\n'
        '[version]\nargv = ["other", "-V"]\n[[client.errors]]\ninclude = "openssl.errors"\n',
    )
    return registry.load(folder=tmp_path)
