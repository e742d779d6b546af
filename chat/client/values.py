"""The client's flag values, checked as they are parsed: a bad one is a usage error that names it,
before any connection is tried (each check is a click type through chat.cli.Checked); and
Options, what the command line asked for."""

import getpass
from dataclasses import dataclass

import jwt

from chat.contract import DEFAULT_USER, DIRECT, DIRECT_RULE, NAME, NAME_RULE, members

MAX_PORT = 65535
MAX_ID = 2**64 - 1
"""MessagesRequest.after_id is a uint64."""
MAX_LIMIT = 2**32 - 1
"""MessagesRequest.limit is a uint32."""
DEFAULT_SERVER = "localhost:50051"


@dataclass(frozen=True, slots=True)
class Options:
    """What the command line asked for: the command, how to reach the server, the command's own
    flags (those another command does not have keep their defaults)."""

    command: str
    server: str = DEFAULT_SERVER
    token: str = ""
    tls: bool = False
    ca: str = ""
    user: str | None = None
    """None: the user a signed token names, else the login name."""
    room: str = ""
    after: int = 0
    limit: int = 0
    follow: bool = False
    json: bool = False


def split_address(address: str) -> tuple[str, int]:
    """HOST:PORT (IPv6 in brackets) into its parts; raises ValueError naming what is wrong."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or len(port) > len(str(MAX_PORT)):
        raise ValueError(f"{address!r} is not HOST:PORT")
    if not 1 <= int(port) <= MAX_PORT:
        raise ValueError(f"{address!r}: port {port} is not between 1 and {MAX_PORT}")
    return host.strip("[]") or "localhost", int(port)


def server_address(address: str) -> str:
    """`address` when it is HOST:PORT with a real port; ValueError naming what is wrong."""
    split_address(address)
    return address


def name(value: str) -> str:
    """A user or room name the server accepts; ValueError when it is none."""
    if not NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a name: {NAME_RULE}")
    return value


def room_problem(room: str) -> str | None:
    """Why `room` cannot be entered, or None: a room name, or a direct conversation."""
    if NAME.fullmatch(room):
        return None
    users = members(room)
    if DIRECT.fullmatch(room) and users == sorted(set(users or ())):
        return None
    return f"{room!r} is not a room name: {NAME_RULE}, or {DIRECT_RULE}"


def room(value: str) -> str:
    """A room name, or a direct conversation (`@ann,bob`); ValueError saying why not."""
    if problem := room_problem(value):
        raise ValueError(problem)
    return value


def _whole(value: str, maximum: int) -> int:
    if len(value) > len(str(maximum)) + 1:  # int() refuses over 4,300 digits in its own words
        raise ValueError(f"{value[:32]}... is not between 0 and {maximum}")
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a whole number") from None
    if not 0 <= number <= maximum:
        raise ValueError(f"{value} is not between 0 and {maximum}")
    return number


def message_id(value: str) -> int:
    """A message id, 0 or more; ValueError when it is none."""
    return _whole(value, MAX_ID)


def limit(value: str) -> int:
    """How many messages, 0 (all) or more; ValueError when it is none."""
    return _whole(value, MAX_LIMIT)


def login_name() -> str:
    """The user's login name when the server would accept it as a chat name, else `anonymous`."""
    try:
        login = getpass.getuser()
    except (OSError, KeyError):  # no login name anywhere (a container without a passwd entry)
        return DEFAULT_USER
    return login if NAME.fullmatch(login) else DEFAULT_USER


def token_user(token: str) -> str | None:
    """The user a signed token (JWT) names in its `sub`, when it is a valid name; None for a
    shared token or anything else. Read without checking the signature: the server checks it,
    and a client only needs to know whom it speaks as."""
    if token.count(".") != 2:
        return None
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    user = claims.get("sub")
    return user if isinstance(user, str) and NAME.fullmatch(user) else None
