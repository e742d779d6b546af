"""Server reflection (v1 and v1alpha, grpclib's own), so tools need no copy of the proto file.

betterproto classes carry no protobuf descriptors, so the descriptors come from the descriptor
set `just gen` writes beside the generated code (gen/chat.protoset), together with those of the
health and reflection services, in a pool of their own.
"""

from collections.abc import Sequence
from importlib import resources
from types import ModuleType
from typing import Any

from google.protobuf.descriptor_pb2 import FileDescriptorProto, FileDescriptorSet
from google.protobuf.descriptor_pool import DescriptorPool
from grpclib.health.v1 import health_pb2
from grpclib.reflection.service import ServerReflection
from grpclib.reflection.v1 import reflection_pb2
from grpclib.reflection.v1alpha import reflection_pb2 as reflection_v1alpha_pb2

PROTOSET = "chat.protoset"
BUILT_IN: list[ModuleType] = [health_pb2, reflection_pb2, reflection_v1alpha_pb2]


def descriptors() -> DescriptorPool:
    """A fresh pool with the contract's files (and what they import) and the built-in services."""
    pool = DescriptorPool()
    contract = FileDescriptorSet.FromString(resources.files("gen").joinpath(PROTOSET).read_bytes())
    for file in contract.file:
        pool.AddSerializedFile(file.SerializeToString())
    for module in BUILT_IN:
        file = FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(file)
        pool.AddSerializedFile(file.SerializeToString())
    return pool


def with_reflection(services: Sequence[Any]) -> list[Any]:
    """`services` and the reflection services, which list them all, themselves included."""
    pool = descriptors()
    extended = ServerReflection.extend(services, pool=pool)
    # extend() lists only the services it was given: extending the extended list once more
    # makes reflection services that list the reflection services too.
    return [*services, *ServerReflection.extend(extended, pool=pool)[len(extended) :]]
