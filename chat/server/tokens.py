"""`chat-server token`: mints a signed token (JWT) for one user, as Centrifugo's `gentoken` does.

The token is signed with the key the server verifies with: the HS256 secret (`--jwt-secret`),
or the private key (`--jwt-private-key`) of the server's `--jwt-public-key`. It carries `sub`
(the user), `exp`, `iat`, the `rooms` patterns when given, and `aud`/`iss` when the server
checks them.
"""

import argparse
import os
import re
import sys
import time
from collections.abc import Sequence

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from chat.errors import ConfigError
from chat.server import auth, rules
from chat.server.auth import Claims, Key
from chat.server.identity import ROOM_PATTERN

TTL = re.compile(r"(\d+)([smhd])")
"""A lifetime: a whole number and a unit, seconds to days (`90s`, `15m`, `1h`, `7d`)."""
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
"""Seconds in each unit of a lifetime."""


def parser() -> argparse.ArgumentParser:
    """The flags of `chat-server token`; the key's come from the server's CHAT_JWT_* variables."""
    env = os.environ.get
    p = argparse.ArgumentParser(
        prog="chat-server token", description="Print a signed token (JWT) for a user."
    )
    p.add_argument("--user", required=True, help="the user the token is for (its 'sub')")
    p.add_argument(
        "--rooms",
        default="",
        metavar="PATTERN,...",
        help="the rooms it allows, '*' matching any run ('general,team-*'); default: every room",
    )
    p.add_argument("--ttl", default="1h", help="how long it is valid: 90s, 15m, 1h, 7d")
    p.add_argument(
        "--jwt-secret",
        default=env("CHAT_JWT_SECRET", ""),
        metavar="SECRET",
        help="sign with this HS256 secret (prefer CHAT_JWT_SECRET: flags show in ps)",
    )
    p.add_argument(
        "--jwt-private-key",
        default=env("CHAT_JWT_PRIVATE_KEY", ""),
        metavar="FILE",
        help="sign with this private key (PEM: RSA, EC, Ed25519)",
    )
    p.add_argument(
        "--jwt-algorithms",
        default=env("CHAT_JWT_ALGORITHMS", ""),
        metavar="ALG,...",
        help="sign with the first of these (default: the one the key signs with)",
    )
    p.add_argument("--jwt-audience", default=env("CHAT_JWT_AUDIENCE", ""), help="the 'aud' claim")
    p.add_argument("--jwt-issuer", default=env("CHAT_JWT_ISSUER", ""), help="the 'iss' claim")
    return p


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
) -> str:
    """A token for `user`, valid `ttl` seconds from now; `rooms` None allows every room."""
    if problem := rules.name_problem("user", user):
        raise ConfigError(f"--user: {problem}")
    now = int(time.time())
    claims: Claims = {"sub": user, "iat": now, "exp": now + ttl}
    if rooms is not None:
        for pattern in rooms:
            if not ROOM_PATTERN.fullmatch(pattern):
                raise ConfigError(
                    f"--rooms: {pattern!r} is not a room name ('*' may match any run)"
                )
        claims["rooms"] = list(rooms)
    if audience:
        claims["aud"] = audience
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, key, algorithm=algorithm)


def token(argv: Sequence[str]) -> str:
    """The token the command line asks for; ConfigError when it cannot be made."""
    args = parser().parse_args(argv)
    if bool(args.jwt_secret) == bool(args.jwt_private_key):
        raise ConfigError("token: give one key, --jwt-secret or --jwt-private-key")
    if args.jwt_secret:
        key: Key = auth.check_secret(args.jwt_secret)
    else:
        key = read_private_key(args.jwt_private_key)
    algorithm = auth.algorithms(args.jwt_algorithms, bool(args.jwt_secret), key)[0]
    rooms = [room.strip() for room in args.rooms.split(",")] if args.rooms else None
    return mint(
        key, algorithm, args.user, rooms, seconds(args.ttl), args.jwt_audience, args.jwt_issuer
    )


def read_private_key(path: str) -> Key:
    """The private key of a PEM file (unencrypted); ConfigError when it is none."""
    return auth.read_pem(
        path, "--jwt-private-key", lambda data: load_pem_private_key(data, password=None)
    )


def main(argv: Sequence[str]) -> None:
    """`chat-server token ...`: prints the token, or says in one line why it cannot."""
    try:
        print(token(argv))
    except ConfigError as error:
        sys.exit(f"chat-server: {error}")
