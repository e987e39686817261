"""Handshake capture and inspection (SPEC §9).

Capture: a sidecar in the server pod runs ``dumpcap`` on the pod's loopback for the
whole run and writes a classic pcap stream to ``/out/capture/<pod>.pcap``. Each cell's
client ends by sending one UDP datagram to 127.0.0.1:9 whose payload names the cell;
once that marker is in the file, every packet the cell sent before it is too, so the
cell's connections (those whose SYN falls between the cell's start and its marker, on
its server port) are cut out into ``handshake.pcap``, a pcapng with the client's key
log embedded (what ``editcap --inject-secrets`` writes). Nothing waits on a clock.

Inspection: pyshark (tshark underneath) reads a capture and gives, per connection, the
TLS version, the CertificateRequest and the CA names it listed, the number of
certificates in the client's Certificate message, whether a CertificateVerify
followed, and every alert with its sender. The client's messages are told apart from
the server's by the server port (the one that sent the ServerHello).
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import EnvironmentProblem, UsageError

MARKER_PORT = 9
MARKER_PREFIX = b"mtls-harness-cell "
#: BPF filter of the sidecar: every TCP packet, and the cells' UDP markers.
CAPTURE_FILTER = f"tcp or (udp and dst port {MARKER_PORT})"
MARKER_TIMEOUT_S = 10.0

_PCAP_MAGIC = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">", b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\x3c\x4d": ">"}
_GLOBAL_HEADER = 24
_RECORD_HEADER = 16
LINKTYPE_ETHERNET = 1
LINKTYPE_NULL = 0
LINKTYPE_RAW = 101

ALERTS = {
    0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 21: "decryption_failed",
    22: "record_overflow", 40: "handshake_failure", 41: "no_certificate", 42: "bad_certificate",
    43: "unsupported_certificate", 44: "certificate_revoked", 45: "certificate_expired",
    46: "certificate_unknown", 47: "illegal_parameter", 48: "unknown_ca", 49: "access_denied",
    50: "decode_error", 51: "decrypt_error", 70: "protocol_version", 71: "insufficient_security",
    80: "internal_error", 86: "inappropriate_fallback", 90: "user_canceled", 100: "no_renegotiation",
    109: "missing_extension", 110: "unsupported_extension", 112: "unrecognized_name",
    113: "bad_certificate_status_response", 115: "unknown_psk_identity", 116: "certificate_required",
    120: "no_application_protocol",
}  # fmt: skip
ALERT_LEVELS = {1: "warning", 2: "fatal"}
TLS_VERSIONS = {"0x0304": "1.3", "0x0303": "1.2", "0x0302": "1.1", "0x0301": "1.0"}
_DN_ATTRIBUTES = {
    "id-at-commonName": "CN", "id-at-organizationName": "O", "id-at-organizationalUnitName": "OU",
    "id-at-countryName": "C", "id-at-localityName": "L", "id-at-stateOrProvinceName": "ST",
}  # fmt: skip


# --- packets -------------------------------------------------------------------------


@dataclass(frozen=True)
class Packet:
    """One captured frame, with the few header fields the slicing needs."""

    header: bytes  # the 16-byte pcap record header, kept to write the record back
    data: bytes
    proto: str  # "tcp", "udp" or ""
    src_port: int = 0
    dst_port: int = 0
    syn_only: bool = False  # a SYN without ACK: the start of a connection
    payload: bytes = b""


def decode(header: bytes, data: bytes, linktype: int) -> Packet:
    """Ports and flags of an Ethernet/IPv4/IPv6 frame; anything else is kept opaque."""
    offset, ethertype = 0, 0
    if linktype == LINKTYPE_ETHERNET and len(data) >= 14:
        ethertype, offset = struct.unpack("!H", data[12:14])[0], 14
    elif linktype == LINKTYPE_RAW and data:
        ethertype = 0x0800 if data[0] >> 4 == 4 else 0x86DD
    elif linktype == LINKTYPE_NULL and len(data) >= 4:
        family = struct.unpack("<I", data[:4])[0]
        ethertype, offset = (0x0800 if family == 2 else 0x86DD), 4
    if ethertype == 0x0800 and len(data) >= offset + 20:
        ihl = (data[offset] & 0x0F) * 4
        proto_number, l4 = data[offset + 9], offset + ihl
    elif ethertype == 0x86DD and len(data) >= offset + 40:
        proto_number, l4 = data[offset + 6], offset + 40
    else:
        return Packet(header, data, "")
    if proto_number == 6 and len(data) >= l4 + 14:
        src, dst = struct.unpack("!HH", data[l4 : l4 + 4])
        flags = data[l4 + 13]
        return Packet(header, data, "tcp", src, dst, bool(flags & 0x02) and not flags & 0x10)
    if proto_number == 17 and len(data) >= l4 + 8:
        src, dst = struct.unpack("!HH", data[l4 : l4 + 4])
        return Packet(header, data, "udp", src, dst, payload=data[l4 + 8 :])
    return Packet(header, data, "")


class PcapFollower:
    """Reads a classic pcap file that another process is still appending to."""

    def __init__(self, path: Path):
        self.path = path
        self.packets: list[Packet] = []
        self.linktype: int | None = None
        self._global: bytes = b""
        self._endian = "<"
        self._offset = 0
        self._lock = threading.Lock()

    def poll(self) -> int:
        """Read every complete record appended since the last call; returns the count."""
        with self._lock:
            try:
                with self.path.open("rb") as handle:
                    handle.seek(self._offset)
                    chunk = handle.read()
            except FileNotFoundError:
                return len(self.packets)
            position = 0
            if self.linktype is None:
                if len(chunk) < _GLOBAL_HEADER:
                    return 0
                magic = chunk[:4]
                if magic not in _PCAP_MAGIC:
                    raise UsageError(f"{self.path} is not a classic pcap file (magic {magic.hex()})")
                self._endian = _PCAP_MAGIC[magic]
                self._global = chunk[:_GLOBAL_HEADER]
                self.linktype = struct.unpack(self._endian + "I", chunk[20:24])[0]
                position = _GLOBAL_HEADER
            while len(chunk) - position >= _RECORD_HEADER:
                header = chunk[position : position + _RECORD_HEADER]
                captured = struct.unpack(self._endian + "I", header[8:12])[0]
                end = position + _RECORD_HEADER + captured
                if end > len(chunk):
                    break  # a record still being written
                self.packets.append(decode(header, chunk[position + _RECORD_HEADER : end], self.linktype))
                position = end
            self._offset += position
            return len(self.packets)

    def wait_for_marker(self, name: str, start: int, timeout_s: float = MARKER_TIMEOUT_S) -> int:
        """Index of the marker packet named ``name`` at or after ``start``."""
        wanted = MARKER_PREFIX + name.encode()
        deadline = time.monotonic() + timeout_s
        checked = start
        while True:
            count = self.poll()
            for index in range(checked, count):
                packet = self.packets[index]
                if packet.proto == "udp" and packet.dst_port == MARKER_PORT and packet.payload.strip() == wanted:
                    return index
            checked = count
            if time.monotonic() > deadline:
                raise EnvironmentProblem(
                    f"the capture {self.path} did not see the marker of {name} within {timeout_s:.0f} s"
                )
            time.sleep(0.005)

    def write_pcapng(self, path: Path, packets: Iterable[Packet], keylog: bytes = b"") -> Path:
        """``packets`` of this capture as pcapng with ``keylog`` embedded."""
        return write_pcapng(path, self.linktype or LINKTYPE_ETHERNET, packets, keylog, self._endian)

    def write(self, path: Path, packets: Iterable[Packet]) -> None:
        """A pcap file with this capture's header and ``packets``."""
        with path.open("wb") as handle:
            handle.write(self._global)
            for packet in packets:
                handle.write(packet.header + packet.data)


def _block(block_type: int, body: bytes) -> bytes:
    padded = body + b"\0" * (-len(body) % 4)
    length = 12 + len(padded)
    return struct.pack("<II", block_type, length) + padded + struct.pack("<I", length)


def write_pcapng(path: Path, linktype: int, packets: Iterable[Packet], keylog: bytes = b"", endian: str = "<") -> Path:
    """A pcapng file of ``packets`` with ``keylog`` embedded as a TLS secrets block.

    This is what ``editcap --inject-secrets tls,KEYLOG`` writes: Wireshark and tshark
    open it decrypted with no key log beside it. Timestamps keep the pcap records'
    microseconds.
    """
    blocks = [
        _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)),  # section header
        _block(0x00000001, struct.pack("<HHI", linktype, 0, 262144)),  # interface description
    ]
    if keylog.strip():
        blocks.append(_block(0x0000000A, struct.pack("<II", 0x544C534B, len(keylog)) + keylog))  # "TLSK"
    for packet in packets:
        seconds, micros, captured, original = struct.unpack(endian + "IIII", packet.header)
        stamp = seconds * 1_000_000 + micros
        body = struct.pack("<IIIII", 0, stamp >> 32, stamp & 0xFFFFFFFF, captured, original) + packet.data
        blocks.append(_block(0x00000006, body))  # enhanced packet
    path.write_bytes(b"".join(blocks))
    return path


def cell_packets(packets: Sequence[Packet], start: int, end: int, server_port: int) -> list[Packet]:
    """The packets of connections to ``server_port`` whose SYN lies in [start, end)."""
    window = packets[start:end]
    clients = {p.src_port for p in window if p.proto == "tcp" and p.syn_only and p.dst_port == server_port}
    return [
        p
        for p in window
        if p.proto == "tcp"
        and (
            (p.dst_port == server_port and p.src_port in clients)
            or (p.src_port == server_port and p.dst_port in clients)
        )
    ]


# --- tools -----------------------------------------------------------------------------


def require_tshark() -> str:
    """The path of tshark, or one clear line: inspection needs it on this machine."""
    path = shutil.which("tshark")
    if path is None:
        raise EnvironmentProblem(
            "tshark is not installed on this machine; it is needed only to inspect captures "
            "(--capture, pcap inspect): apt-get install tshark"
        )
    return path


# --- summary ---------------------------------------------------------------------------


@dataclass
class Alert:
    sender: str  # "client" or "server"
    level: str
    description: str

    def record(self) -> dict[str, str]:
        return {"from": self.sender, "level": self.level, "description": self.description}


@dataclass
class Connection:
    """What one TLS connection showed on the wire."""

    client_port: int
    server_port: int | None = None
    tls_version: str | None = None
    certificate_request: bool = False
    certificate_request_cas: list[str] = field(default_factory=list)
    #: The largest CertificateRequest's handshake length, in bytes (its 3-byte length field).
    certificate_request_bytes: int | None = None
    client_certificate_count: int | None = None
    certificate_verify: bool = False
    #: A CertificateRequest after the client's Finished: the server asked once the
    #: handshake was done (TLS 1.3 post-handshake auth, TLS 1.2 renegotiation; decrypted).
    certificate_request_after_handshake: bool = False
    alerts: list[Alert] = field(default_factory=list)
    client_finished: bool = field(default=False, repr=False)

    def record(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("client_finished")
        data["alerts"] = [a.record() for a in self.alerts]
        return data

    def server_alerts(self) -> list[str]:
        return [a.description for a in self.alerts if a.sender == "server" and a.description != "close_notify"]


def dn_from_showname(showname: str) -> str:
    """``Distinguished Name: (id-at-commonName=X,id-at-organizationName=Y)`` -> ``CN=X,O=Y``."""
    match = re.search(r"\((.*)\)\s*$", showname)
    text = match.group(1) if match else showname
    for long_name, short in _DN_ATTRIBUTES.items():
        text = text.replace(f"{long_name}=", f"{short}=")
    return text


def _values(layer: Any, name: str, attribute: str = "show") -> list[str]:
    found = layer.get_field(name)
    if found is None:
        return []
    return [str(getattr(f, attribute)) for f in found.all_fields]


def summarize(pcap: Path, keylog: Path | None = None) -> list[Connection]:
    """One summary per TLS connection in ``pcap``, in the order they started.

    tshark dissects (``-T pdml``, decrypting with the injected secrets or ``keylog``)
    and pyshark turns each packet into its packet/layer/field objects. tshark is run
    here rather than through ``pyshark.FileCapture``, whose asyncio child handling
    loses tshark's exit status when captures are read from several threads at once.
    """
    from pyshark.tshark.output_parser.tshark_xml import packet_from_xml_packet

    tshark = require_tshark()
    if not pcap.is_file():
        raise UsageError(f"cannot read {pcap}: no such file")
    if pcap.stat().st_size == 0:
        raise UsageError(f"{pcap} is empty: the capture recorded nothing")
    # Only what the summary reads: handshake messages and alerts (not application data).
    # Servers listen on low ports (8443, 9443, 10000 and up) and clients connect from the
    # ephemeral range (32768 and up): decoded by port, a client port that some other
    # protocol registered won the connection (57000 is IRC's, and a handshake vanished).
    # TLS on every port below the ephemeral range: the lower port decides, and it is TLS.
    argv = [tshark, "-r", str(pcap), "-d", "tcp.port==1024-32767,tls"]
    argv += ["-Y", "tls.handshake or tls.alert_message", "-T", "pdml"]
    if keylog is not None:
        argv += ["-o", f"tls.keylog_file:{keylog}"]
    try:
        result = subprocess.run(argv, capture_output=True, timeout=120, check=False)
    except subprocess.TimeoutExpired as exc:
        raise UsageError(f"tshark did not finish reading {pcap} within 120 s") from exc
    if result.returncode != 0:
        raise UsageError(f"cannot read {pcap}: {_tshark_complaint(result.stderr.decode(errors='replace'))}")
    connections: dict[str, Connection] = {}
    for chunk in re.findall(rb"<packet>.*?</packet>", slim_pdml(result.stdout), re.DOTALL):
        _read_packet(packet_from_xml_packet(chunk), connections)
    return list(connections.values())


#: The PDML fields the summary reads; everything else (certificates decoded field by
#: field, hex dumps) is dropped before pyshark builds its objects, which is most of the
#: time an inspection takes.
_KEPT_FIELDS = {
    b"tcp.stream", b"tcp.srcport", b"tcp.dstport",
    b"tls.handshake.type", b"tls.handshake.length", b"tls.handshake.version",
    b"tls.handshake.extensions.supported_version",
    b"tls.handshake.certificates_length", b"tls.handshake.certificate_length", b"tls.handshake.dname",
    b"tls.alert_message.level", b"tls.alert_message.desc",
}  # fmt: skip
_FIELD_NAME = re.compile(rb'<field name="([^"]*)"')


def slim_pdml(pdml: bytes) -> bytes:
    """PDML with only the fields in ``_KEPT_FIELDS``, each as a self-closed element."""
    kept = []
    for line in pdml.splitlines():
        stripped = line.strip()
        if stripped.startswith(b"<field"):
            match = _FIELD_NAME.match(stripped)
            if match and match.group(1) in _KEPT_FIELDS:
                kept.append(stripped if stripped.endswith(b"/>") else stripped[:-1] + b"/>")
        elif stripped.startswith((b"<packet", b"</packet", b"<proto", b"</proto")):
            kept.append(stripped)
    return b"\n".join(kept)


def _tshark_complaint(stderr: str) -> str:
    """tshark's own complaint ("appears to have been cut short…"), without its root warning."""
    lines = [line for line in stderr.strip().splitlines() if line and not line.startswith("Running as user")]
    return lines[-1].removeprefix("tshark: ") if lines else "tshark failed without a message"


def _read_packet(packet: Any, connections: dict[str, Connection]) -> None:
    stream = str(packet.tcp.stream)
    src, dst = int(packet.tcp.srcport), int(packet.tcp.dstport)
    layers = packet.get_multiple_layers("tls")
    for layer in layers:
        types = _values(layer, "handshake_type")
        if "2" in types:  # ServerHello: its source port is the server's
            connection = connections.setdefault(stream, Connection(client_port=dst))
            connection.server_port = src
            supported = _values(layer, "handshake_extensions_supported_version")
            version = supported[0] if supported else (_values(layer, "handshake_version") or [""])[0]
            connection.tls_version = TLS_VERSIONS.get(version, version or None)
        elif "1" in types:
            connections.setdefault(stream, Connection(client_port=src))
    _apply([(stream, src, dst, layer) for layer in layers], connections)


def _apply(rows: list[tuple[str, int, int, Any]], connections: dict[str, Connection]) -> None:
    for stream, src, _dst, layer in rows:
        connection = connections.get(stream)
        if connection is None:
            continue
        from_server = connection.server_port is not None and src == connection.server_port
        if connection.server_port is None:
            from_server = src != connection.client_port
        types = _values(layer, "handshake_type")
        if from_server and "13" in types:
            connection.certificate_request = True
            connection.certificate_request_after_handshake |= connection.client_finished
            for kind, length in zip(types, _values(layer, "handshake_length"), strict=False):
                if kind == "13" and length.isdigit():
                    connection.certificate_request_bytes = max(connection.certificate_request_bytes or 0, int(length))
            connection.certificate_request_cas += [
                dn_from_showname(s) for s in _values(layer, "handshake_dname", "showname")
            ]
        if not from_server and "11" in types:
            lengths = _values(layer, "handshake_certificate_length")
            total = _values(layer, "handshake_certificates_length")
            connection.client_certificate_count = 0 if total == ["0"] else len(lengths)
        if not from_server and "15" in types:
            connection.certificate_verify = True
        if not from_server and "20" in types:
            connection.client_finished = True
        levels = _values(layer, "alert_message_level")
        descriptions = _values(layer, "alert_message_desc")
        for level, description in zip(levels, descriptions, strict=False):
            connection.alerts.append(
                Alert(
                    "server" if from_server else "client",
                    ALERT_LEVELS.get(int(level), level),
                    ALERTS.get(int(description), f"alert_{description}"),
                )
            )


def describe(connections: Sequence[Connection]) -> str:
    """The human summary ``pcap inspect`` prints."""
    if not connections:
        return "no TLS connection in this capture"
    lines = []
    for n, c in enumerate(connections, 1):
        lines.append(f"connection {n}: client port {c.client_port} -> server port {c.server_port}, TLS {c.tls_version}")
        request = "yes" if c.certificate_request else "no"
        size = f", {c.certificate_request_bytes} bytes" if c.certificate_request_bytes is not None else ""
        lines.append(
            f"  CertificateRequest: {request}{size}"
            + (f" (CAs: {'; '.join(c.certificate_request_cas)})" if c.certificate_request_cas else "")
        )
        count = (
            "no Certificate message"
            if c.client_certificate_count is None
            else f"{c.client_certificate_count} certificate(s)"
        )
        lines.append(f"  client Certificate: {count}; CertificateVerify: {'yes' if c.certificate_verify else 'no'}")
        for alert in c.alerts:
            lines.append(f"  alert from {alert.sender}: {alert.level} {alert.description}")
    return "\n".join(lines)


def as_json(connections: Sequence[Connection]) -> dict[str, Any]:
    """The first connection's summary at the top level, and every connection."""
    first = connections[0].record() if connections else {
        "tls_version": None, "certificate_request": False, "certificate_request_cas": [],
        "certificate_request_bytes": None,
        "client_certificate_count": None, "certificate_verify": False,
        "certificate_request_after_handshake": False, "alerts": [],
    }  # fmt: skip
    return {**first, "connections": [c.record() for c in connections]}
