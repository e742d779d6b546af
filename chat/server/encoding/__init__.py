"""The `--encoding` choice: betterproto's dataclasses, or the hand-written codec where it may.

The hand-written codec writes the bytes betterproto writes for the fields it knows. It runs
only with the betterproto it was compared against, and only while gen/ has no field it does
not know: a field added to the contract falls back to betterproto until the codec learns it.
"""

import dataclasses
from typing import Any, Literal

from chat.server.encoding.base import Encoding
from chat.server.encoding.betterproto_impl import BetterprotoEncoding
from chat.server.encoding.handwritten_impl import KNOWN_FIELDS, HandwrittenEncoding
from chat.server.gate import fast_chosen, version_problem
from gen.grpc import chat as generated

Choice = Literal["auto", "betterproto", "handwritten"]
CHOICES: tuple[Choice, ...] = ("auto", "betterproto", "handwritten")

TESTED = {"betterproto": ("2.0.0b7", "2.0.0b8")}
"""The betterproto the hand-written codec was compared with, byte for byte."""


def generated_fields(message: Any) -> dict[int, str]:
    """A generated message's fields, by number."""
    return {
        field.metadata["betterproto"].number: field.name for field in dataclasses.fields(message)
    }


def handwritten_unavailable() -> str | None:
    """Why the hand-written codec cannot run here (a version, a field it does not know), or
    None."""
    problem = version_problem(TESTED)
    if problem:
        return problem
    for name, known in KNOWN_FIELDS.items():
        fields = generated_fields(getattr(generated, name))
        if fields != known:
            unknown = sorted(set(fields.items()) - set(known.items()))
            return f"gen/ {name} has fields the hand-written codec does not know: {unknown}"
    return None


def select(choice: Choice) -> tuple[Encoding, str]:
    """The encoding for `choice`, and why; ConfigError when an explicit `handwritten` cannot
    run here."""
    fast, reason = fast_chosen("encoding", choice, "handwritten", handwritten_unavailable, TESTED)
    return (HandwrittenEncoding() if fast else BetterprotoEncoding()), reason
