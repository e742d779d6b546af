"""`chat-server token`: mints a signed token (JWT) for one user, as Centrifugo's `gentoken` does.

The token is signed with the key the server verifies with: the HS256 secret (`--jwt-secret`),
or the private key (`--jwt-private-key`) of the server's `--jwt-public-key`. It carries `sub`
(the user), `exp`, `iat`, the `rooms` patterns and the `mod` patterns (where its user moderates)
when given, and `aud`/`iss` when the server checks them.
"""

import re
import sys
import time
from collections.abc import Mapping, Sequence

import click
import jwt
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from chat.cli import fail_usage, one_line
from chat.errors import ConfigError
from chat.server import auth, rules
from chat.server.auth import Claims, Key
from chat.server.identity import ROOM_PATTERN

TTL = re.compile(r"(\d+)([smhd])")
"""A lifetime: a whole number and a unit, seconds to days (`90s`, `15m`, `1h`, `7d`)."""
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
"""Seconds in each unit of a lifetime."""
PROG = "chat-server token"


def command() -> click.Command:
    """`chat-server token`; the key's flags read the server's CHAT_JWT_* variables."""

    def flag(name: str, help: str, metavar: str | None = None, envvar: bool = True) -> click.Option:
        variable = "CHAT_" + name.removeprefix("--").replace("-", "_").upper() if envvar else None
        return click.Option([name], default="", envvar=variable, metavar=metavar, help=help)

    return click.Command(
        PROG,
        help="Print a signed token (JWT) for a user.",
        params=[
            click.Option(
                ["--user"],
                required=True,
                metavar="USER",
                help="the user the token is for (its 'sub')",
            ),
            flag(
                "--rooms",
                "the rooms it allows, '*' matching any run ('general,team-*'); default: every room",
                "PATTERN,...",
                envvar=False,
            ),
            flag(
                "--mod",
                "the rooms its user moderates (deletes others' messages, sets the topic), '*' "
                "matching any run; default: none",
                "PATTERN,...",
                envvar=False,
            ),
            click.Option(
                ["--ttl"],
                default="1h",
                metavar="TTL",
                help="how long it is valid: 90s, 15m, 1h, 7d",
            ),
            flag(
                "--jwt-secret",
                "sign with this HS256 secret (prefer CHAT_JWT_SECRET: flags show in ps)",
                "SECRET",
            ),
            flag("--jwt-private-key", "sign with this private key (PEM: RSA, EC, Ed25519)", "FILE"),
            flag(
                "--jwt-algorithms",
                "sign with the first of these (default: the one the key signs with)",
                "ALG,...",
            ),
            flag("--jwt-audience", "the 'aud' claim", "AUDIENCE"),
            flag("--jwt-issuer", "the 'iss' claim", "ISSUER"),
        ],
    )


def seconds(ttl: str) -> int:
    """A `--ttl` in seconds; ConfigError when it is not one."""
    match = TTL.fullmatch(ttl)
    if not match or int(match[1]) == 0:
        raise ConfigError(f"--ttl {ttl!r} is not a lifetime such as 90s, 15m, 1h or 7d")
    return int(match[1]) * UNITS[match[2]]


def mint(
    key: Key,
    algorithm: str,
    user: str,
    rooms: Sequence[str] | None = None,
    ttl: int = 3600,
    audience: str = "",
    issuer: str = "",
    mod: Sequence[str] = (),
) -> str:
    """A token for `user`, valid `ttl` seconds from now; `rooms` None allows every room, `mod`
    lists the rooms its user moderates."""
    if problem := rules.name_problem("user", user):
        raise ConfigError(f"--user: {problem}")
    now = int(time.time())
    claims: Claims = {"sub": user, "iat": now, "exp": now + ttl}
    for flag, patterns in (("--rooms", rooms or ()), ("--mod", mod)):
        for pattern in patterns:
            if not ROOM_PATTERN.fullmatch(pattern):
                raise ConfigError(f"{flag}: {pattern!r} is not a room name ('*' may match any run)")
    if rooms is not None:
        claims["rooms"] = list(rooms)
    if mod:
        claims["mod"] = list(mod)
    if audience:
        claims["aud"] = audience
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, key, algorithm=algorithm)


def token(args: Mapping[str, str]) -> str:
    """The token the flags of `chat-server token` ask for; ConfigError when it cannot be made."""
    if bool(args["jwt_secret"]) == bool(args["jwt_private_key"]):
        raise ConfigError("token: give one key, --jwt-secret or --jwt-private-key")
    if args["jwt_secret"]:
        key: Key = auth.check_secret(args["jwt_secret"])
    else:
        key = read_private_key(args["jwt_private_key"])
    algorithm = auth.algorithms(args["jwt_algorithms"], bool(args["jwt_secret"]), key)[0]
    rooms = [room.strip() for room in args["rooms"].split(",")] if args["rooms"] else None
    mod = [room.strip() for room in args["mod"].split(",")] if args["mod"] else []
    ttl = seconds(args["ttl"])
    return mint(
        key, algorithm, args["user"], rooms, ttl, args["jwt_audience"], args["jwt_issuer"], mod
    )


def read_private_key(path: str) -> Key:
    """The private key of a PEM file (unencrypted); ConfigError when it is none."""
    return auth.read_pem(
        path, "--jwt-private-key", lambda data: load_pem_private_key(data, password=None)
    )


def main(argv: Sequence[str]) -> None:
    """`chat-server token ...`: prints the token, or says in one line why it cannot (exit code 2
    for flags that cannot be read, 1 for a token that cannot be made)."""
    try:
        with command().make_context(PROG, list(argv)) as ctx:
            args = ctx.params
    except click.exceptions.Exit as done:  # --help
        sys.exit(done.exit_code)
    except click.ClickException as error:
        fail_usage(PROG, one_line(error))
    try:
        print(token(args))
    except ConfigError as error:
        sys.exit(f"chat-server: {error}")
