"""The Python stack's X509_V_ERR names: OpenSSL's header table agrees with OpenSSL's binding."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from cryptography.hazmat.bindings.openssl.binding import Binding

MODULE = Path(__file__).resolve().parent.parent / "images" / "python" / "x509_names.py"


def _names():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("x509_names", MODULE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_header_table_agrees_with_every_code_the_binding_exports() -> None:
    names = _names()
    exported = {
        getattr(Binding.lib, attr): attr.removeprefix("X509_V_ERR_")
        for attr in dir(Binding.lib)
        if attr.startswith("X509_V_ERR_") and isinstance(getattr(Binding.lib, attr), int)
    }
    assert exported, "the binding exports no X509_V_ERR constant"
    assert {code: names.HEADER[code] for code in exported} == exported


def test_the_security_level_codes_have_their_names() -> None:
    names = _names()
    # The codes a server at security level 2 reports for the weak client certificates
    # of SPEC §7b, which the binding does not export.
    assert (names.name(66), names.name(67), names.name(68)) == (
        "EE_KEY_TOO_SMALL",
        "CA_KEY_TOO_SMALL",
        "CA_MD_TOO_WEAK",
    )
    assert names.name(4242) == "X509_V_ERR_4242"
