"""The one argparse behaviour both Python programs share: errors are one line and exit 2."""

from __future__ import annotations

import argparse


class ArgParser(argparse.ArgumentParser):
    """argparse whose errors print the program, the problem and the usage, then exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message}\nusage: {self.format_usage()[7:]}")
