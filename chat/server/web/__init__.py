"""The server's web door: the chat page, gRPC-Web and WebSockets on `--web-port`, beside gRPC."""
