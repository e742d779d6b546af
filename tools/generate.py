"""Regenerates gen/ from proto/chat.proto: protoc (grpcio-tools) with the betterproto plugin, and
the descriptor set `gen/chat.protoset` that server reflection serves.

`just gen` runs it; the staleness test runs it into a temporary folder and compares.
"""

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
PROTOSET = "chat.protoset"


def generate(out_dir: Path) -> None:
    """Writes the betterproto package for every proto file into out_dir (replacing it), with
    the descriptors of those files and all they import in out_dir/chat.protoset."""
    plugin = Path(sys.executable).parent / "protoc-gen-python_betterproto"
    include = Path(protoc.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as scratch:
        args = [
            "protoc",
            f"-I{PROTO_DIR}",
            f"-I{include}",
            f"--plugin=protoc-gen-python_betterproto={plugin}",
            f"--python_betterproto_out={scratch}",
            f"--descriptor_set_out={Path(scratch) / PROTOSET}",
            "--include_imports",
            *sorted(str(p) for p in PROTO_DIR.glob("*.proto")),
        ]
        code = protoc.main(args)
        if code != 0:
            raise SystemExit(f"protoc failed with exit code {code}")
        shutil.rmtree(out_dir, ignore_errors=True)
        shutil.copytree(scratch, out_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "gen")
    generate(parser.parse_args().out)


if __name__ == "__main__":
    main()
