"""TLS contexts for server and client; gRPC's offer only HTTP/2 by ALPN, the web door's HTTP/1.1.

gRPC clients (grpcio, recent grpc-go) refuse a TLS server whose handshake does not agree on
`h2`, so the server's context must name it, not only the client's. The web door (aiohttp)
speaks HTTP/1.1 only: a browser offered `h2` there would speak a protocol it does not serve.
"""

import ssl

from chat.errors import ConfigError

ALPN = ["h2"]
WEB_ALPN = ["http/1.1"]


def server_context(cert_file: str, key_file: str, alpn: list[str] = ALPN) -> ssl.SSLContext:
    """The server's side: its certificate chain and key, offering `alpn`; raises ConfigError
    when unusable."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file, key_file)
    except OSError as error:  # ssl.SSLError included
        raise ConfigError(
            f"cannot use --tls-cert {cert_file} with --tls-key {key_file}: {_reason(error)}"
        ) from None
    context.set_alpn_protocols(alpn)
    return context


def client_context(ca_file: str | None = None) -> ssl.SSLContext:
    """The client's side: verifies the server against `ca_file`, or the system's trusted CAs.

    Raises ValueError when the CA file cannot be used.
    """
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    except OSError as error:  # ssl.SSLError included
        raise ValueError(f"cannot use --ca {ca_file}: {_reason(error)}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(ALPN)
    return context


def _reason(error: OSError) -> str:
    return error.strerror or str(error)
