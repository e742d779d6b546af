"""grpc.chat: a chat service over gRPC in pure asyncio Python (grpclib + betterproto)."""
