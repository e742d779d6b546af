"""What a fast path asks of the installed libraries before it may run, as plain reasons.

A fast path is tested with certain versions of the libraries it reaches into; outside them it
is not run. `version_problem` checks the installed versions, `missing_names` the attributes a
fast path touches, so a renamed internal is found at startup rather than on a connection.
"""

from collections.abc import Callable, Iterable, Mapping
from importlib import metadata

from packaging.version import Version

from chat.errors import ConfigError

TestedRanges = Mapping[str, tuple[str, str]]
"""Distribution name to (lowest version tested, first version above the tested range)."""


def version_problem(tested: TestedRanges) -> str | None:
    """Why an installed version falls outside its tested range, or None when all are inside."""
    for name, (lowest, above) in tested.items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            return f"{name} is not installed"
        if not Version(lowest) <= Version(installed) < Version(above):
            return f"{name} {installed} is outside the tested range {lowest} to below {above}"
    return None


def missing_names(owner: type, names: Iterable[str], where: str) -> str | None:
    """Why the class `owner` lacks one of `names`, or None: each must be an attribute of the
    class, or an attribute its own methods set (as `self.name = ...` in `__init__` or
    `connection_made`)."""
    used = {
        name
        for cls in owner.__mro__
        for member in vars(cls).values()
        if (code := getattr(member, "__code__", None)) is not None
        for name in code.co_names
    }
    for name in names:
        if not hasattr(owner, name) and name not in used:
            return f"{where} has no {name}"
    return None


def described(tested: TestedRanges) -> str:
    """The installed versions of `tested`, for the startup line: 'h2 4.4.1, hpack 4.2.0'."""
    return ", ".join(f"{name} {metadata.version(name)}" for name in tested)


def fast_chosen(
    flag: str, choice: str, fast: str, unavailable: Callable[[], str | None], tested: TestedRanges
) -> tuple[bool, str]:
    """Whether the fast implementation `fast` runs for the `--flag` `choice`, and why, for the
    startup line. `auto` takes it when `unavailable` finds no reason against it; an explicit
    `fast` that cannot run is a ConfigError naming the reason."""
    if choice not in ("auto", fast):
        return False, "chosen"
    problem = unavailable()
    if problem:
        if choice == fast:
            raise ConfigError(f"--{flag} {fast} cannot run: {problem}")
        return False, f"auto: {problem}"
    return True, f"{'auto' if choice == 'auto' else 'chosen'}: tested with {described(tested)}"
