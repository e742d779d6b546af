"""Who may call: one shared bearer token (`--token`), or signed tokens (JWT) that name a user.

Either way the credential comes as `authorization: Bearer <token>` and is checked once, when a
call starts (chat/server/calls.py). The shared token is compared in constant time, so the time an
answer takes says nothing about how much of a guess was right. A signed token is verified with
PyJWT: its signature, `exp` and `sub` required, `aud` and `iss` when configured; what it says
becomes the call's Identity. A token that fails gets UNAUTHENTICATED saying which check failed.
"""

import hmac
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from chat.contract import AUTHORIZATION
from chat.errors import ConfigError
from chat.server import rules
from chat.server.config import Settings
from chat.server.identity import ROOM_PATTERN, Identity

Metadata = Mapping[str, str | bytes] | None
"""A call's request metadata, as grpclib gives it."""
Key = Any
"""A PyJWT key: the secret's bytes for HMAC, else a `cryptography` public or private key."""
Claims = dict[str, Any]
"""A token's payload as PyJWT decodes it: JSON values."""

HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
"""What a shared secret signs with; every other algorithm needs a key pair."""
MIN_SECRET_BYTES = 32
"""The shortest HS256 secret accepted: the hash's size (RFC 7518, section 3.2)."""
VERIFIED_TOKENS = 4096
"""Verified tokens remembered with their identity and expiry, the longest remembered dropped
first: a client that calls again with the same token costs a lookup and a clock read,
not PyJWT's decoding and signature check (several times the rest of a unary call's auth)."""
ROOMS_CLAIM = "rooms"
"""The claim that lists the room patterns a token allows; without it, every room."""
MOD_CLAIM = "mod"
"""The claim that lists the room patterns where a token's user is a moderator."""
BEARER = "Bearer "
"""What comes before the token in `authorization` metadata."""
LATEST_EXP = 253_402_300_799
"""The latest `exp` accepted: the last second of the year 9999 (UTC). PyJWT takes any integer,
and one of 10^400 is past what a float, and so the server's clock, can hold."""


class Auth(Protocol):
    """A credential check run once per call; the identity it proves, or None for no user."""

    name: str
    """What it asks for, for the startup line."""

    def check(self, metadata: Metadata) -> Identity | None:
        """The call's identity; raises UNAUTHENTICATED when the credential does not hold."""
        ...


def bearer_token(metadata: Metadata) -> str:
    """The token of `authorization: Bearer <token>`; UNAUTHENTICATED when missing, not so, or
    not text."""
    value = metadata.get(AUTHORIZATION) if metadata else None
    if not isinstance(value, str) or not value:
        raise GRPCError(
            Status.UNAUTHENTICATED,
            "no token: this server needs metadata 'authorization: Bearer <token>'",
        )
    if not value.startswith(BEARER) or not value[len(BEARER) :]:
        raise GRPCError(
            Status.UNAUTHENTICATED, "malformed authorization metadata: expected 'Bearer <token>'"
        )
    token = value[len(BEARER) :]
    try:
        token.encode()
    except UnicodeEncodeError:  # aiohttp keeps header bytes that are not UTF-8 as surrogates
        raise GRPCError(
            Status.UNAUTHENTICATED, "malformed authorization metadata: the token is not UTF-8"
        ) from None
    return token


class TokenAuth:
    """Checks a call's metadata against the one token the server was given."""

    def __init__(self, token: str) -> None:
        self.name = "a shared token"
        self._expected = token.encode()

    def check(self, metadata: Metadata) -> None:
        """Returns when the call carries the token; raises UNAUTHENTICATED otherwise."""
        if not hmac.compare_digest(bearer_token(metadata).encode(), self._expected):
            raise GRPCError(Status.UNAUTHENTICATED, "the bearer token is not valid")


class JwtAuth:
    """Verifies signed tokens with one key; each gives the call an Identity."""

    def __init__(
        self,
        key: Key,
        algorithms: Sequence[str],
        audience: str | None = None,
        issuer: str | None = None,
    ) -> None:
        self.name = f"signed tokens ({', '.join(algorithms)})"
        self._key = key
        self._algorithms = list(algorithms)
        self._audience = audience
        self._issuer = issuer
        self._jwt = jwt.PyJWT({"require": ["exp", "sub"], "enforce_minimum_key_length": True})
        self._verified: dict[str, tuple[Identity, float]] = {}  # token: identity, expiry

    def check(self, metadata: Metadata) -> Identity:
        """The identity a valid token proves; UNAUTHENTICATED saying what is wrong otherwise.

        A token verified before is recognised by its exact text and only its expiry is checked
        again: the same bytes have the same signature, and a time claim that held once (`nbf`,
        `iat`) holds from then on.
        """
        token = bearer_token(metadata)
        known = self._verified.get(token)
        if known is not None:
            identity, expiry = known
            if time.time() < expiry:
                return identity
            del self._verified[token]
        try:
            claims = self._jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
            )
        except jwt.PyJWTError as error:
            raise GRPCError(Status.UNAUTHENTICATED, _token_problem(error)) from None
        expiry = _expiry(claims)
        identity = _identity(claims)
        if len(self._verified) >= VERIFIED_TOKENS:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = (identity, expiry)
        return identity


def _token_problem(error: jwt.PyJWTError) -> str:
    """What was wrong with a token, in words a user can act on."""
    if isinstance(error, jwt.ExpiredSignatureError):
        return "the token has expired: get a new one"
    if isinstance(error, jwt.InvalidSignatureError):
        return "bad signature: the token was not signed with this server's key"
    if isinstance(error, jwt.MissingRequiredClaimError):
        return f"the token has no {error.claim!r} claim, which this server requires"
    if isinstance(error, jwt.DecodeError):
        return f"malformed token: {error}"
    if isinstance(error, jwt.InvalidAudienceError):
        return "wrong audience: the token's 'aud' claim does not name this server"
    if isinstance(error, jwt.InvalidIssuerError):
        return "wrong issuer: the token's 'iss' claim is not the one this server trusts"
    if isinstance(error, jwt.InvalidAlgorithmError):
        return f"the token's algorithm is not accepted here: {error}"
    if isinstance(error, jwt.ImmatureSignatureError):
        return f"the token is not valid yet: {error}"
    return f"the token is not valid: {error}"


def _expiry(claims: Claims) -> float:
    """When a verified token expires, in seconds since the epoch; UNAUTHENTICATED for an `exp`
    past LATEST_EXP. `nbf` and `iat` need no such check: PyJWT compares them as integers, and
    the server keeps neither."""
    expiry = int(claims["exp"])  # PyJWT has checked that int() takes it, and that it is to come
    if expiry > LATEST_EXP:
        raise GRPCError(
            Status.UNAUTHENTICATED,
            "the token's 'exp' claim is not a time: it is past the year 9999",
        )
    return float(expiry)


def _identity(claims: Claims) -> Identity:
    user = claims["sub"]
    if problem := rules.name_problem("user", user):
        raise GRPCError(Status.UNAUTHENTICATED, f"the token's sub is not a valid user: {problem}")
    rooms = _patterns(claims, ROOMS_CLAIM)
    return Identity(user, rooms, _patterns(claims, MOD_CLAIM) or ())


def _patterns(claims: Claims, claim: str) -> tuple[str, ...] | None:
    """A claim's room patterns; None when the token has no such claim."""
    if claim not in claims:
        return None
    rooms = claims[claim]
    if not isinstance(rooms, list) or not all(
        isinstance(room, str) and ROOM_PATTERN.fullmatch(room) for room in rooms
    ):
        raise GRPCError(
            Status.UNAUTHENTICATED,
            f"the token's {claim!r} claim must be a list of room names, '*' matching any run",
        )
    return tuple(rooms)


def key_algorithms(key: Key) -> list[str]:
    """The algorithm a public or private key signs with, for a default `--jwt-algorithms`."""
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return ["RS256"]
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        by_curve = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
        if key.curve.name in by_curve:
            return [by_curve[key.curve.name]]
        raise ConfigError(f"EC curve {key.curve.name} has no JWT algorithm: use P-256")
    keys = (
        ed25519.Ed25519PublicKey,
        ed25519.Ed25519PrivateKey,
        ed448.Ed448PublicKey,
        ed448.Ed448PrivateKey,
    )
    if isinstance(key, keys):
        return ["EdDSA"]
    raise ConfigError(f"a {type(key).__name__} cannot sign JWTs: use an RSA, EC or Ed25519 key")


def algorithms(named: str, secret: bool, key: Key = None) -> list[str]:
    """The algorithms to use: `named` (comma-separated) when given, checked against the key."""
    if not named:
        return ["HS256"] if secret else key_algorithms(key)
    chosen = [name.strip() for name in named.split(",") if name.strip()]
    known = jwt.algorithms.get_default_algorithms()
    for name in chosen:
        if name not in known or name == "none":
            raise ConfigError(f"--jwt-algorithms: {name!r} is not a JWT signing algorithm")
        if (name in HMAC_ALGORITHMS) != secret:
            needs = "--jwt-secret" if name in HMAC_ALGORITHMS else "a public or private key"
            raise ConfigError(f"--jwt-algorithms: {name} needs {needs}")
    return chosen


def read_pem(path: str, what: str, load: Callable[[bytes], Key]) -> Key:
    """A key from a PEM file; ConfigError saying why when it cannot be read."""
    try:
        return load(Path(path).read_bytes())
    except OSError as error:
        raise ConfigError(f"cannot read {what} {path!r}: {error.strerror}") from None
    except (ValueError, TypeError) as error:
        raise ConfigError(f"{what} {path!r} is not a PEM key: {error}") from None


def check_secret(secret: str) -> bytes:
    """The secret's bytes; ConfigError when it is too short to be safe."""
    data = secret.encode()
    if len(data) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"--jwt-secret is {len(data)} bytes; use at least {MIN_SECRET_BYTES} "
            "(for example: openssl rand -hex 32)"
        )
    return data


def from_settings(settings: Settings) -> Auth | None:
    """The check the settings ask for, or None when every call may come in; ConfigError for a
    key that cannot be used."""
    if settings.token:
        return TokenAuth(settings.token)
    if settings.jwt_secret:
        key: Key = check_secret(settings.jwt_secret)
    elif settings.jwt_public_key:
        key = read_pem(settings.jwt_public_key, "--jwt-public-key", load_pem_public_key)
    else:
        return None
    chosen = algorithms(settings.jwt_algorithms, bool(settings.jwt_secret), key)
    return JwtAuth(key, chosen, settings.jwt_audience or None, settings.jwt_issuer or None)
