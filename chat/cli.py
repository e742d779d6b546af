"""Command lines that fail in one line naming what is wrong, where click's own errors print the
whole usage block first: `chat-server` (chat/server/config.py), `chat-server token` and `chat`
(chat/client/__init__.py). The types here check a flag's or a variable's text; `one_line` says
what click refused, naming the flag or the variable; `fail_usage` prints it and exits with 2.
"""

import math
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click
from click.core import ParameterSource

USAGE_ERROR = 2
"""The exit code of a command line that cannot be run as written (click's own)."""


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


class Checked(click.ParamType[Any]):
    """A value a function checks and returns: the ValueError it raises says what is wrong."""

    def __init__(self, check: Callable[[str], Any], metavar: str) -> None:
        self.check = check
        self.name = metavar

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):  # a default, already a value
            return value
        try:
            return self.check(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)


def one_line(error: click.ClickException) -> str:
    """What click refused, in one line: the flag, or the variable when the value came from the
    environment, then why (`--drain-seconds: -5.0 is not in the range x>=0`)."""
    if isinstance(error, click.NoSuchOption):
        return f"unknown option {error.option_name}"
    why = error.message.rstrip(".")
    param, ctx = getattr(error, "param", None), getattr(error, "ctx", None)
    missing = isinstance(error, click.MissingParameter)
    if missing or not isinstance(param, click.Option) or ctx is None or param.name is None:
        return error.format_message().rstrip(".")
    if ctx.get_parameter_source(param.name) is ParameterSource.ENVIRONMENT:
        variable = param.envvar or f"{ctx.auto_envvar_prefix}_{param.name.upper()}"
        return f"{variable}: {why}"
    return f"{param.opts[0]}: {why}"


def fail_usage(prog: str, message: str) -> NoReturn:
    """Exits with code 2 after one line on stderr naming what is wrong."""
    print(f"{prog}: {message} (see {prog} --help)", file=sys.stderr)
    sys.exit(USAGE_ERROR)
