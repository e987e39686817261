"""Capture slicing (pure) and handshake summaries on small committed pcaps.

The pcaps in tests/fixtures/pcaps were captured by the harness itself from throwaway
keys: TLS 1.2 with no client certificate (cleartext), TLS 1.3 with no client
certificate (secrets stripped, its key log beside it), a TLS 1.3 trusted client and a
require-mode rejection (secrets injected), and a CertificateRequest naming a CA.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from harness import capture
from harness.errors import EnvironmentProblem, UsageError

PCAPS = Path(__file__).parent / "fixtures" / "pcaps"
needs_tshark = pytest.mark.skipif(
    shutil.which("tshark") is None, reason="tshark is not installed (apt-get install tshark)"
)


# --- synthetic frames for the pure parts ------------------------------------------------


def frame(src: int, dst: int, *, flags: int = 0x18, udp_payload: bytes | None = None) -> bytes:
    ethernet = b"\x00" * 12 + b"\x08\x00"
    if udp_payload is not None:
        l4 = struct.pack("!HHHH", src, dst, 8 + len(udp_payload), 0) + udp_payload
        proto = 17
    else:
        l4 = struct.pack("!HHIIBBHHH", src, dst, 0, 0, 5 << 4, flags, 0, 0, 0)
        proto = 6
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0, 64, proto, 0, b"\x7f\0\0\1", b"\x7f\0\0\1")
    return ethernet + ip + l4


def record(data: bytes) -> bytes:
    return struct.pack("<IIII", 0, 0, len(data), len(data)) + data


GLOBAL = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, capture.LINKTYPE_ETHERNET)
MARK = capture.MARKER_PREFIX


def test_follower_reads_only_complete_records(tmp_path: Path) -> None:
    path = tmp_path / "run.pcap"
    first, second = record(frame(40000, 10000, flags=0x02)), record(frame(10000, 40000, flags=0x12))
    path.write_bytes(GLOBAL + first + second[:10])
    follower = capture.PcapFollower(path)
    assert follower.poll() == 1
    with path.open("ab") as handle:
        handle.write(second[10:])
    assert follower.poll() == 2
    assert (follower.packets[0].syn_only, follower.packets[1].syn_only) == (True, False)
    assert follower.linktype == capture.LINKTYPE_ETHERNET


def test_follower_finds_the_named_marker_only(tmp_path: Path) -> None:
    path = tmp_path / "run.pcap"
    path.write_bytes(
        GLOBAL
        + record(frame(5000, 9, udp_payload=MARK + b"other-cell"))
        + record(frame(5000, 9, udp_payload=MARK + b"this-cell"))
    )
    follower = capture.PcapFollower(path)
    assert follower.wait_for_marker("this-cell", 0) == 1
    with pytest.raises(EnvironmentProblem, match="did not see the marker of absent"):
        follower.wait_for_marker("absent", 0, timeout_s=0.05)


def test_a_file_that_is_not_pcap_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.pcap"
    path.write_bytes(b"\x0a\x0d\x0d\x0a" + b"\0" * 40)
    with pytest.raises(UsageError, match="not a classic pcap"):
        capture.PcapFollower(path).poll()


def test_cell_packets_keep_the_connections_that_started_in_the_window(tmp_path: Path) -> None:
    frames = [
        frame(41000, 10000),  # 0: late packet of the previous cell's connection
        frame(42000, 10000, flags=0x02),  # 1: this cell's SYN
        frame(10000, 42000, flags=0x12),  # 2: SYN-ACK
        frame(43000, 10001, flags=0x02),  # 3: another server's cell, in parallel
        frame(42000, 10000),  # 4: data
        frame(5000, 9, udp_payload=MARK + b"c"),  # 5: the marker
        frame(10000, 42000),  # 6: after the marker
    ]
    path = tmp_path / "run.pcap"
    path.write_bytes(GLOBAL + b"".join(record(f) for f in frames))
    follower = capture.PcapFollower(path)
    follower.poll()
    kept = capture.cell_packets(follower.packets, 0, 5, 10000)
    assert [follower.packets.index(p) for p in kept] == [1, 2, 4]
    out = tmp_path / "cell.pcap"
    follower.write(out, kept)
    again = capture.PcapFollower(out)
    assert again.poll() == 3


def test_dn_names_are_shortened() -> None:
    showname = "Distinguished Name: (id-at-commonName=Root CA,id-at-organizationName=Example)"
    assert capture.dn_from_showname(showname) == "CN=Root CA,O=Example"


def test_missing_tshark_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capture.shutil, "which", lambda _name: None)
    with pytest.raises(
        EnvironmentProblem, match="tshark is not installed on this machine; it is needed only to inspect"
    ):
        capture.require_tshark()


# --- summaries on real captures -----------------------------------------------------------


@needs_tshark
def test_tls12_empty_client_certificate_in_cleartext() -> None:
    (conn,) = capture.summarize(PCAPS / "tls12-no-cert.pcap")
    assert conn.tls_version == "1.2"
    assert conn.certificate_request
    assert conn.client_certificate_count == 0
    assert not conn.certificate_verify


@needs_tshark
def test_tls13_empty_client_certificate_needs_the_key_log() -> None:
    (hidden,) = capture.summarize(PCAPS / "tls13-no-cert.pcap")
    assert hidden.tls_version == "1.3"
    assert hidden.client_certificate_count is None  # encrypted: not visible without keys
    (seen,) = capture.summarize(PCAPS / "tls13-no-cert.pcap", PCAPS / "tls13-no-cert.keylog")
    assert seen.certificate_request
    assert seen.client_certificate_count == 0
    assert not seen.certificate_verify


@needs_tshark
def test_tls13_trusted_client_sends_leaf_and_intermediate_with_injected_secrets() -> None:
    (conn,) = capture.summarize(PCAPS / "tls13-trusted-client.pcapng")
    assert (conn.tls_version, conn.client_certificate_count, conn.certificate_verify) == ("1.3", 2, True)
    assert conn.server_alerts() == []


@needs_tshark
def test_require_mode_rejection_shows_the_servers_alert() -> None:
    (conn,) = capture.summarize(PCAPS / "tls13-require-expired.pcapng")
    assert [a.record() for a in conn.alerts if a.sender == "server"] == [
        {"from": "server", "level": "fatal", "description": "certificate_expired"}
    ]


@needs_tshark
def test_certificate_request_lists_the_trusted_ca() -> None:
    (conn,) = capture.summarize(PCAPS / "tls12-trusted-ca-no-cert.pcapng")
    assert conn.certificate_request_cas == ["CN=mtls-harness Client PKI Root CA,O=mtls-harness Client PKI"]


def inspect(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", "pcap", "inspect", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@needs_tshark
def test_pcap_inspect_json() -> None:
    result = inspect(str(PCAPS / "tls13-no-cert.pcap"), "--keylog", str(PCAPS / "tls13-no-cert.keylog"), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["tls_version"] == "1.3"
    assert summary["certificate_request"] is True
    assert summary["certificate_request_cas"] == []
    assert summary["client_certificate_count"] == 0
    assert summary["certificate_verify"] is False
    assert all(set(a) == {"from", "level", "description"} for a in summary["alerts"])


@needs_tshark
@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (lambda data: data[: len(data) // 2], "cut short"),
        (lambda _data: b"not a capture\n", "isn't a capture file"),
        (lambda _data: b"", "is empty"),
    ],
    ids=["truncated", "garbage", "empty"],
)
def test_pcap_inspect_bad_files_are_one_line_exit_2(tmp_path: Path, content, needle: str) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(content((PCAPS / "tls12-no-cert.pcap").read_bytes()))
    result = inspect(str(bad))
    assert result.returncode == 2
    assert needle in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


@needs_tshark
def test_pcapng_with_embedded_key_log_opens_decrypted(tmp_path: Path) -> None:
    follower = capture.PcapFollower(PCAPS / "tls13-no-cert.pcap")
    follower.poll()
    out = follower.write_pcapng(
        tmp_path / "cell.pcapng", follower.packets, (PCAPS / "tls13-no-cert.keylog").read_bytes()
    )
    (conn,) = capture.summarize(out)  # no key log given: the secrets travel in the file
    assert (conn.tls_version, conn.client_certificate_count, conn.certificate_verify) == ("1.3", 0, False)
    plain = follower.write_pcapng(tmp_path / "plain.pcapng", follower.packets)
    (hidden,) = capture.summarize(plain)
    assert hidden.client_certificate_count is None


@needs_tshark
def test_a_client_port_another_protocol_registered_is_still_tls() -> None:
    """Captured in CI: the client connected from port 57000, which tshark gives to IRC by
    port, and the whole handshake vanished from the summary."""
    (conn,) = capture.summarize(PCAPS / "tls13-client-port-57000.pcapng")
    assert (conn.client_port, conn.server_port, conn.tls_version) == (57000, 10042, "1.3")
    assert conn.client_certificate_count == 0


@needs_tshark
def test_a_certificate_request_too_large_for_its_lengths_shows_its_size() -> None:
    """Captured from the matrix (huge-ca-list, NSS's TLS 1.2 server, curl): NSS wrote the
    95 KB list of 601 CA names with a 16-bit length; the capture shows the message's size."""
    from harness.judgement import wire_mismatches
    from harness.scenarios import BY_ID

    (conn,) = capture.summarize(PCAPS / "tls12-huge-ca-list-nss.pcap")
    assert conn.tls_version == "1.2" and conn.certificate_request
    assert conn.certificate_request_bytes == 95518
    record = conn.record()
    assert wire_mismatches(BY_ID["huge-ca-list"], "client-error:decode-error", record) == []
    small = {**record, "certificate_request_bytes": 4096}
    assert any(
        "at least 65536 bytes" in p for p in wire_mismatches(BY_ID["huge-ca-list"], "client-error:decode-error", small)
    )
    assert "95518 bytes" in capture.describe([conn])
