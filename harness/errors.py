"""Errors the command line turns into one clear line and exit status 2."""

from __future__ import annotations


class HarnessError(Exception):
    """A problem the user can fix: bad input or a missing prerequisite (exit 2)."""


class UsageError(HarnessError):
    """Bad input: an unknown id, a flag out of range, an unreadable file."""


class EnvironmentProblem(HarnessError):
    """The machine lacks something: Docker unreachable, tshark missing."""
