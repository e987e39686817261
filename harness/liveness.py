"""Is the process that started a run still alive? Asked only where the answer is sure.

A run's containers and its ``--out`` lock carry the identity of the harness process that
made them. A pid alone is not enough to call a run dead: two sandboxes on one machine
can share a host name and a Docker engine while each has its own pid namespace, so pid
1234 "not found here" may be a live run over there (this swept other people's running
matrices once). And a pid can be reused after a reboot or by a later process. So a
process is called gone only when it is in *our* pid namespace, since *this* boot, and
its pid is free or now belongs to a process that started at another time.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

PROC = Path("/proc")


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _namespace() -> str:
    try:
        return os.readlink(PROC / "self" / "ns" / "pid")
    except OSError:
        return ""


def _stat(pid: int) -> tuple[str, str]:
    """(state, start time in clock ticks since boot) from /proc/PID/stat; ("", "") if unreadable."""
    stat = _read(PROC / str(pid) / "stat")
    fields = stat.rsplit(")", 1)[-1].split()  # the command name may hold spaces
    return (fields[0], fields[19]) if len(fields) > 19 else ("", "")


def _start_time(pid: int) -> str:
    return _stat(pid)[1]


def _exists(pid: int) -> bool:
    """Whether pid names a process here, even one whose /proc entry we may not read
    (hidepid, another user): EPERM means it exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def this_process() -> dict[str, str]:
    """Who we are, as labels and lock fields: pid, host, pid namespace, boot, start time."""
    pid = os.getpid()
    return {
        "pid": str(pid),
        "host": socket.gethostname(),
        "pidns": _namespace(),
        "boot": _read(PROC / "sys" / "kernel" / "random" / "boot_id"),
        "started": _start_time(pid),
    }


def gone(identity: dict[str, str]) -> bool:
    """True only when the process ``identity`` describes is certainly not running.

    Without the namespace and boot fields (a run of an older version, another machine,
    another sandbox) the answer is False: such a run is left alone, and
    ``mtls-harness clean`` is the way to remove it.
    """
    me = this_process()
    pid = str(identity.get("pid", ""))
    if not pid.isdigit() or not identity.get("pidns") or not identity.get("boot"):
        return False
    if identity.get("host") == me["host"] and identity.get("boot") != me["boot"]:
        return True  # this machine rebooted since: no process survives a reboot
    if (identity.get("host"), identity.get("pidns"), identity.get("boot")) != (me["host"], me["pidns"], me["boot"]):
        return False
    state, started = _stat(int(pid))
    if not started:
        return not _exists(int(pid))  # unreadable is not gone: hidepid hides live processes
    if state in ("Z", "X"):
        return True  # a zombie (or dead) harness runs nothing
    return bool(identity.get("started")) and started != identity.get("started")


def judged(identity: dict[str, str]) -> str:
    """ "gone", "alive", or "unknown" (another machine, sandbox or boot: not ours to judge)."""
    if gone(identity):
        return "gone"
    me = this_process()
    pid = str(identity.get("pid", ""))
    same_place = (identity.get("host"), identity.get("pidns"), identity.get("boot")) == (
        me["host"],
        me["pidns"],
        me["boot"],
    )
    if same_place and pid.isdigit() and _start_time(int(pid)) == identity.get("started"):
        return "alive"
    return "unknown"
