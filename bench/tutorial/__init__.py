"""The tutorial's own grpcio stack, generated at run time from the copy of its proto kept here."""

import importlib
import sys
from pathlib import Path
from types import ModuleType

from grpc_tools import protoc

TUTORIAL_DIR = Path(__file__).resolve().parent


def generate(out_dir: Path) -> tuple[ModuleType, ModuleType]:
    """chat_pb2 and chat_pb2_grpc of the tutorial's proto, generated into out_dir and imported."""
    include = Path(protoc.__file__).parent / "_proto"
    code = protoc.main(
        [
            "protoc",
            f"-I{TUTORIAL_DIR}",
            f"-I{include}",
            f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            str(TUTORIAL_DIR / "chat.proto"),
        ]
    )
    if code != 0:
        raise RuntimeError(f"protoc failed with exit code {code}")
    sys.path.insert(0, str(out_dir))
    try:
        for name in ("chat_pb2", "chat_pb2_grpc"):
            sys.modules.pop(name, None)
        return importlib.import_module("chat_pb2"), importlib.import_module("chat_pb2_grpc")
    finally:
        sys.path.remove(str(out_dir))
