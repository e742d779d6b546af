"""gen/ is exactly what `just gen` makes of proto/chat.proto today, descriptor set included."""

import subprocess
import sys
from pathlib import Path

from google.protobuf.descriptor_pb2 import FileDescriptorSet

from chat.server.reflection import PROTOSET
from harness import ROOT, differences


def test_committed_gen_matches_a_fresh_generation(tmp_path: Path) -> None:
    fresh = tmp_path / "gen"
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "generate.py"), "--out", str(fresh)],
        check=True,
        timeout=120,
    )
    assert differences(ROOT / "gen", fresh) == [], "gen/ is stale: run `just gen` and commit"


def test_gen_holds_the_descriptor_set_of_the_proto_file_and_its_imports() -> None:
    protoset = FileDescriptorSet.FromString((ROOT / "gen" / PROTOSET).read_bytes())
    names = [file.name for file in protoset.file]
    assert names == ["google/protobuf/timestamp.proto", "chat.proto"]
    assert protoset.file[1].service[0].name == "ChatService"
