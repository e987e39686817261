"""OpenSSL's X509_V_ERR_* names by number, read from OpenSSL's own constants.

The numbers come from the ``cryptography`` binding, which is compiled against the
OpenSSL headers of this image: no name is guessed per case. A number the binding does
not export is named ``X509_V_ERR_<n>`` and described with X509_verify_cert_error_string.
"""

from __future__ import annotations

from cryptography.hazmat.bindings.openssl.binding import Binding

_PREFIX = "X509_V_ERR_"


def _table() -> dict[int, str]:
    lib = Binding.lib
    return {
        getattr(lib, attr): attr[len(_PREFIX):]
        for attr in dir(lib)
        if attr.startswith(_PREFIX) and isinstance(getattr(lib, attr), int)
    }


NAMES = _table()


def name(code: int) -> str:
    """``UNABLE_TO_GET_ISSUER_CERT`` for 2, as Node's authorizationError spells it."""
    return NAMES.get(code, f"{_PREFIX}{code}")


def describe(code: int) -> str:
    """OpenSSL's own sentence for ``code`` ("certificate has expired")."""
    binding = Binding
    text = binding.lib.X509_verify_cert_error_string(code)
    return binding.ffi.string(text).decode("ascii", "replace")
