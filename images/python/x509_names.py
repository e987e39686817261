"""OpenSSL's X509_V_ERR_* names by number, read from OpenSSL's own constants.

The numbers come from the ``cryptography`` binding, which is compiled against the
OpenSSL headers of this image, and, for the codes it does not export (among them
EE_KEY_TOO_SMALL and CA_MD_TOO_WEAK, which security level 2 gives), from ``HEADER``: every
``X509_V_ERR_*`` define of include/openssl/x509_vfy.h as Debian bookworm's libssl-dev
3.0.22-1~deb12u2 ships it, copied by a script, not by hand. No name is guessed per case.
A number neither knows is named ``X509_V_ERR_<n>`` and described with
X509_verify_cert_error_string.
"""

from __future__ import annotations

from cryptography.hazmat.bindings.openssl.binding import Binding

_PREFIX = "X509_V_ERR_"


HEADER = {
    1: "UNSPECIFIED",
    2: "UNABLE_TO_GET_ISSUER_CERT",
    3: "UNABLE_TO_GET_CRL",
    4: "UNABLE_TO_DECRYPT_CERT_SIGNATURE",
    5: "UNABLE_TO_DECRYPT_CRL_SIGNATURE",
    6: "UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY",
    7: "CERT_SIGNATURE_FAILURE",
    8: "CRL_SIGNATURE_FAILURE",
    9: "CERT_NOT_YET_VALID",
    10: "CERT_HAS_EXPIRED",
    11: "CRL_NOT_YET_VALID",
    12: "CRL_HAS_EXPIRED",
    13: "ERROR_IN_CERT_NOT_BEFORE_FIELD",
    14: "ERROR_IN_CERT_NOT_AFTER_FIELD",
    15: "ERROR_IN_CRL_LAST_UPDATE_FIELD",
    16: "ERROR_IN_CRL_NEXT_UPDATE_FIELD",
    17: "OUT_OF_MEM",
    18: "DEPTH_ZERO_SELF_SIGNED_CERT",
    19: "SELF_SIGNED_CERT_IN_CHAIN",
    20: "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
    21: "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
    22: "CERT_CHAIN_TOO_LONG",
    23: "CERT_REVOKED",
    24: "NO_ISSUER_PUBLIC_KEY",
    25: "PATH_LENGTH_EXCEEDED",
    26: "INVALID_PURPOSE",
    27: "CERT_UNTRUSTED",
    28: "CERT_REJECTED",
    29: "SUBJECT_ISSUER_MISMATCH",
    30: "AKID_SKID_MISMATCH",
    31: "AKID_ISSUER_SERIAL_MISMATCH",
    32: "KEYUSAGE_NO_CERTSIGN",
    33: "UNABLE_TO_GET_CRL_ISSUER",
    34: "UNHANDLED_CRITICAL_EXTENSION",
    35: "KEYUSAGE_NO_CRL_SIGN",
    36: "UNHANDLED_CRITICAL_CRL_EXTENSION",
    37: "INVALID_NON_CA",
    38: "PROXY_PATH_LENGTH_EXCEEDED",
    39: "KEYUSAGE_NO_DIGITAL_SIGNATURE",
    40: "PROXY_CERTIFICATES_NOT_ALLOWED",
    41: "INVALID_EXTENSION",
    42: "INVALID_POLICY_EXTENSION",
    43: "NO_EXPLICIT_POLICY",
    44: "DIFFERENT_CRL_SCOPE",
    45: "UNSUPPORTED_EXTENSION_FEATURE",
    46: "UNNESTED_RESOURCE",
    47: "PERMITTED_VIOLATION",
    48: "EXCLUDED_VIOLATION",
    49: "SUBTREE_MINMAX",
    50: "APPLICATION_VERIFICATION",
    51: "UNSUPPORTED_CONSTRAINT_TYPE",
    52: "UNSUPPORTED_CONSTRAINT_SYNTAX",
    53: "UNSUPPORTED_NAME_SYNTAX",
    54: "CRL_PATH_VALIDATION_ERROR",
    55: "PATH_LOOP",
    56: "SUITE_B_INVALID_VERSION",
    57: "SUITE_B_INVALID_ALGORITHM",
    58: "SUITE_B_INVALID_CURVE",
    59: "SUITE_B_INVALID_SIGNATURE_ALGORITHM",
    60: "SUITE_B_LOS_NOT_ALLOWED",
    61: "SUITE_B_CANNOT_SIGN_P_384_WITH_P_256",
    62: "HOSTNAME_MISMATCH",
    63: "EMAIL_MISMATCH",
    64: "IP_ADDRESS_MISMATCH",
    65: "DANE_NO_MATCH",
    66: "EE_KEY_TOO_SMALL",
    67: "CA_KEY_TOO_SMALL",
    68: "CA_MD_TOO_WEAK",
    69: "INVALID_CALL",
    70: "STORE_LOOKUP",
    71: "NO_VALID_SCTS",
    72: "PROXY_SUBJECT_NAME_VIOLATION",
    73: "OCSP_VERIFY_NEEDED",
    74: "OCSP_VERIFY_FAILED",
    75: "OCSP_CERT_UNKNOWN",
    76: "UNSUPPORTED_SIGNATURE_ALGORITHM",
    77: "SIGNATURE_ALGORITHM_MISMATCH",
    78: "SIGNATURE_ALGORITHM_INCONSISTENCY",
    79: "INVALID_CA",
    80: "PATHLEN_INVALID_FOR_NON_CA",
    81: "PATHLEN_WITHOUT_KU_KEY_CERT_SIGN",
    82: "KU_KEY_CERT_SIGN_INVALID_FOR_NON_CA",
    83: "ISSUER_NAME_EMPTY",
    84: "SUBJECT_NAME_EMPTY",
    85: "MISSING_AUTHORITY_KEY_IDENTIFIER",
    86: "MISSING_SUBJECT_KEY_IDENTIFIER",
    87: "EMPTY_SUBJECT_ALT_NAME",
    88: "EMPTY_SUBJECT_SAN_NOT_CRITICAL",
    89: "CA_BCONS_NOT_CRITICAL",
    90: "AUTHORITY_KEY_IDENTIFIER_CRITICAL",
    91: "SUBJECT_KEY_IDENTIFIER_CRITICAL",
    92: "CA_CERT_MISSING_KEY_USAGE",
    93: "EXTENSIONS_REQUIRE_VERSION_3",
    94: "EC_KEY_EXPLICIT_PARAMS",
}


def _table() -> dict[int, str]:
    lib = Binding.lib
    exported = {
        getattr(lib, attr): attr[len(_PREFIX):]
        for attr in dir(lib)
        if attr.startswith(_PREFIX) and isinstance(getattr(lib, attr), int)
    }
    return {**HEADER, **exported}


NAMES = _table()


def name(code: int) -> str:
    """``UNABLE_TO_GET_ISSUER_CERT`` for 2, as Node's authorizationError spells it."""
    return NAMES.get(code, f"{_PREFIX}{code}")


def describe(code: int) -> str:
    """OpenSSL's own sentence for ``code`` ("certificate has expired")."""
    binding = Binding
    text = binding.lib.X509_verify_cert_error_string(code)
    return binding.ffi.string(text).decode("ascii", "replace")
