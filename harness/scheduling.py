"""Scheduling (SPEC §11): groups of cells on worker threads, server start-up ahead of
them, and what Ctrl-C and SIGTERM do to a running matrix.

Nothing here knows what a cell is: ``run_groups`` takes groups of work items that must run
in order, one group per worker at a time, and a ``prestart`` for the group a worker will
take next.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

#: After Ctrl-C, how long the running cells may take to finish (a cell's own limits, and some).
DRAIN_S = 45.0
#: How many groups a starter thread prepares ahead of the workers (SPEC §11: server
#: start-up off the critical path), in the order the workers will take them.
START_AHEAD = 2

Item = TypeVar("Item")


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block ends (what arrived meanwhile is dropped:
    the run is already ending because of it). Only the main thread can hold them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        for _ in range(16):
            pending = signal.sigpending() & held
            if not pending:
                break
            signal.sigwait(pending)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)


def ignore_further_interrupts() -> None:
    """From the first Ctrl-C (or SIGTERM) on, the ending run ignores the next ones."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def run_groups(
    groups: Sequence[list[Item]],
    work: Callable[[list[Item]], None],
    jobs: int,
    stop: threading.Event,
    prestart: Callable[[list[Item]], None] | None = None,
) -> None:
    """Run ``work`` on each group with up to ``jobs`` worker threads, groups taken in order.

    While the workers run group N, a starter thread calls ``prestart`` on the groups up to
    N + START_AHEAD that no worker has taken yet. An exception in ``work`` (a bug, or a
    Docker failure) stops the run and is raised here. Ctrl-C stops handing out groups and
    lets the running ones finish, up to DRAIN_S, before KeyboardInterrupt goes on.
    """
    pending = list(groups)
    taking = threading.Condition()
    taken = [0]  # groups handed to workers so far (they are taken in order)
    errors: list[BaseException] = []

    def starter() -> None:
        assert prestart is not None
        for index, group in enumerate(groups):
            with taking:
                while not stop.is_set() and index >= taken[0] + START_AHEAD:
                    taking.wait(0.5)
                if stop.is_set():
                    return
                if index < taken[0]:
                    continue  # a worker took it first and starts it itself
            prestart(group)

    def worker() -> None:
        while not stop.is_set():
            with taking:
                if not pending:
                    return
                group = pending.pop(0)
                taken[0] += 1
                taking.notify_all()
            try:
                work(group)
            except BaseException as exc:  # a bug or a Docker failure: stop, and say it in the main thread
                errors.append(exc)
                stop.set()

    # Daemon threads, not an executor: a worker stuck past every limit must never keep
    # an interrupted run (or the interpreter's exit) waiting for it.
    threads = [
        threading.Thread(target=worker, name=f"cell_{n}", daemon=True) for n in range(max(1, min(jobs, len(groups))))
    ]
    helpers = []
    if prestart is not None and len(groups) > len(threads):  # every group beyond the first ones waits for a worker
        helpers.append(threading.Thread(target=starter, name="starter", daemon=True))
    for thread in [*helpers, *threads]:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
    except BaseException:
        stop.set()
        # The run is ending: more Ctrl-C must not cut short what follows (the running
        # cells finish, each within its own limit, up to DRAIN_S; then the caller writes
        # the results and removes the containers).
        ignore_further_interrupts()
        deadline = time.monotonic() + DRAIN_S
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        raise
    for helper in helpers:  # it ends with the last group, or at once if the run stopped
        helper.join(DRAIN_S)
    if errors:
        raise errors[0]
