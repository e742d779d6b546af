"""Server reflection over TCP, v1 and v1alpha: what grpcurl and friends ask a server."""

import asyncio
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from google.protobuf.descriptor_pb2 import FileDescriptorProto
from grpclib.client import Channel
from grpclib.reflection.v1 import reflection_grpc, reflection_pb2
from grpclib.reflection.v1alpha import reflection_grpc as v1alpha_grpc
from grpclib.reflection.v1alpha import reflection_pb2 as v1alpha_pb2

from chat.client import split_address
from harness import ServerProcess

Start = Callable[..., ServerProcess]
VERSIONS = [(reflection_grpc, reflection_pb2), (v1alpha_grpc, v1alpha_pb2)]


async def ask(server: ServerProcess, version: tuple[ModuleType, ModuleType], **request: Any) -> Any:
    """One reflection request and its response, on a stream of its own."""
    grpc_module, pb2 = version
    channel = Channel(*split_address(server.address))
    try:
        stub = grpc_module.ServerReflectionStub(channel)
        async with stub.ServerReflectionInfo.open(timeout=10) as stream:
            await stream.send_message(pb2.ServerReflectionRequest(**request), end=True)
            async with asyncio.timeout(10):
                return await stream.recv_message()
    finally:
        channel.close()


@pytest.fixture
def server(server_process: Start) -> ServerProcess:
    return server_process("memory://", "--token", "reflection-needs-none")


@pytest.mark.parametrize("version", VERSIONS, ids=["v1", "v1alpha"])
async def test_list_services_names_chat_health_and_reflection(
    server: ServerProcess, version: tuple[ModuleType, ModuleType]
) -> None:
    response = await ask(server, version, list_services="")
    assert sorted(s.name for s in response.list_services_response.service) == [
        "grpc.chat.ChatService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ]


@pytest.mark.parametrize("version", VERSIONS, ids=["v1", "v1alpha"])
async def test_the_file_of_the_chat_service_describes_its_methods(
    server: ServerProcess, version: tuple[ModuleType, ModuleType]
) -> None:
    response = await ask(server, version, file_containing_symbol="grpc.chat.ChatService")
    (blob,) = response.file_descriptor_response.file_descriptor_proto
    file = FileDescriptorProto.FromString(blob)
    assert file.package == "grpc.chat"
    assert list(file.dependency) == ["google/protobuf/timestamp.proto"]
    (service,) = file.service
    methods = {m.name: (m.client_streaming, m.server_streaming) for m in service.method}
    assert methods == {
        "GetStats": (False, False),
        "GetMessages": (False, True),
        "SendAndReceiveMessage": (True, True),
        "PostMessage": (False, False),
        "GetHistory": (False, False),
        "ListRooms": (False, False),
        "SearchMessages": (False, False),
    }
    imported = await ask(server, version, file_by_filename="google/protobuf/timestamp.proto")
    (blob,) = imported.file_descriptor_response.file_descriptor_proto
    assert FileDescriptorProto.FromString(blob).message_type[0].name == "Timestamp"


@pytest.mark.parametrize("version", VERSIONS, ids=["v1", "v1alpha"])
async def test_an_unknown_symbol_is_not_found(
    server: ServerProcess, version: tuple[ModuleType, ModuleType]
) -> None:
    response = await ask(server, version, file_containing_symbol="grpc.chat.NoSuchThing")
    assert response.error_response.error_code == 5  # NOT_FOUND
