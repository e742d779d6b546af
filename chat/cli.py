"""Command lines that fail in one line naming what is wrong: click's and argparse's own errors
print the whole usage block first, and a missing command hides the flag that was misspelt.

The server's settings are click options (chat/server/config.py); the types here check a flag's
or a variable's text, and `one_line` says what click refused, naming the flag or the variable.
"""

import argparse
import math
import sys
from typing import Any, NoReturn

import click
from click.core import ParameterSource

USAGE_ERROR = 2
"""The exit code of a command line that cannot be run as written (click's and argparse's own)."""


class Number(click.FloatRange):
    """A number in a range, never NaN or infinite: no clock, window or rate is either, and a
    range alone lets NaN through (every comparison with it is false)."""

    name = "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return super().convert(number, param, ctx)


class Whole(click.IntRange):
    """A whole number in a range, said as such when the text is none ("3.5", "many")."""

    name = "whole number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            number = int(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a whole number", param, ctx)
        return super().convert(number, param, ctx)


def one_line(error: click.ClickException) -> str:
    """What click refused, in one line: the flag, or the variable when the value came from the
    environment, then why (`--drain-seconds: -5.0 is not in the range x>=0`)."""
    if isinstance(error, click.NoSuchOption):
        return f"unknown option {error.option_name}"
    why = error.message.rstrip(".")
    param, ctx = getattr(error, "param", None), getattr(error, "ctx", None)
    if not isinstance(param, click.Option) or ctx is None or param.name is None:
        return error.format_message().rstrip(".")
    if ctx.get_parameter_source(param.name) is ParameterSource.ENVIRONMENT:
        return f"{ctx.auto_envvar_prefix}_{param.name.upper()}: {why}"
    return f"{param.opts[0]}: {why}"


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
