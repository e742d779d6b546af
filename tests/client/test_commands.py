"""What a typed line means: IRC and Slack habits, read without a server."""

import pytest

from chat.client.commands import Typed, read


@pytest.mark.parametrize(
    ("line", "meant"),
    [
        ("hello", Typed("say", "hello")),
        ("//me too", Typed("say", "/me too")),
        ("s/helo/hello/", Typed("fix", "helo", text="hello")),
        ("s/helo/hello", Typed("fix", "helo", text="hello")),
        ("s/typo//", Typed("fix", "typo", text="")),
        ("s/he said so", Typed("say", "s/he said so")),
        ("s/a/b/ and more", Typed("say", "s/a/b/ and more")),
        ("/msg bob hi there", Typed("msg", "bob", text="hi there")),
        ("/msg bob", Typed("msg", "bob")),
        ("/reply 3 me too", Typed("reply", number=3, text="me too")),
        ("/reply #3 me too", Typed("reply", number=3, text="me too")),
        ("/edit 12 new words", Typed("edit", number=12, text="new words")),
        ("/delete 4", Typed("delete", number=4)),
        ("/react 2 👍", Typed("react", "👍", 2)),
        ("/unreact 2 👍", Typed("unreact", "👍", 2)),
        ("/topic the plan", Typed("topic", text="the plan")),
        ("/topic", Typed("topic")),
        ("/more", Typed("more")),
    ],
)
def test_each_command_is_read_with_its_number_and_text(line: str, meant: Typed) -> None:
    assert read(line) == meant


@pytest.mark.parametrize(
    ("line", "usage"),
    [
        ("/msg", "/msg needs a USER"),
        ("/reply 3", "/reply needs a message number and TEXT"),
        ("/reply three words", "/reply needs a message number and TEXT"),
        ("/edit 0 zero", "/edit needs a message number and TEXT"),
        ("/delete", "/delete needs a message number"),
        ("/delete 3 now", "/delete needs a message number"),
        ("/react 3", "/react needs a message number and an EMOJI"),
    ],
)
def test_a_command_without_what_it_needs_says_how_it_is_used(line: str, usage: str) -> None:
    typed = read(line)
    assert typed.action == "usage"
    assert typed.argument.startswith(usage)
