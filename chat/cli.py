"""Command lines that fail in one line naming what is wrong: argparse's own errors print the whole
usage block first, and a missing command hides the flag that was misspelt."""

import argparse
import sys
from typing import NoReturn

USAGE_ERROR = 2
"""The exit code of a command line that cannot be run as written (argparse's own)."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: `PROG: what is wrong (see PROG --help)`."""

    def error(self, message: str) -> NoReturn:
        fail_usage(self.prog.split()[0], message)

    def parse_strictly(self, words: list[str]) -> argparse.Namespace:
        """Parses `words`, naming the first unknown one before anything else goes wrong."""
        args, unknown = self.parse_known_args(words)
        if unknown:
            what = "option" if unknown[0].startswith("-") else "argument"
            self.error(f"unknown {what} {unknown[0]}")
        return args


def fail_usage(prog: str, message: str) -> NoReturn:
    """Exits with code 2 after one line on stderr naming what is wrong."""
    print(f"{prog}: {message} (see {prog} --help)", file=sys.stderr)
    sys.exit(USAGE_ERROR)
