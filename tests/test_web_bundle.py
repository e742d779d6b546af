"""The committed page (chat/server/web/static/) and its types (web/src/gen/) are exactly what
`just web` builds from web/ and proto/chat.proto today."""

import shutil
import subprocess
from pathlib import Path

from harness import ROOT, differences

SOURCES = ("package.json", "package-lock.json", "buf.gen.yaml", "tsconfig.json", "build.mjs", "src")
"""What a build reads from web/ (besides node_modules, which `npm ci` makes)."""


def test_the_committed_page_matches_a_fresh_build(tmp_path: Path, npm: str) -> None:
    web = tmp_path / "web"
    web.mkdir()
    for name in SOURCES:
        source = ROOT / "web" / name
        if source.is_dir():
            shutil.copytree(source, web / name, ignore=shutil.ignore_patterns("gen"))
        else:
            shutil.copy(source, web / name)
    shutil.copytree(ROOT / "proto", tmp_path / "proto")
    for command in (
        [npm, "ci", "--no-audit", "--no-fund", "--prefer-offline"],
        ["node", "build.mjs", str(tmp_path / "static")],
    ):
        subprocess.run(command, cwd=web, check=True, timeout=300)
    stale = "is stale: run `just web` and commit"
    static = ROOT / "chat" / "server" / "web" / "static"
    assert differences(static, tmp_path / "static") == [], f"{static} {stale}"
    assert differences(ROOT / "web" / "src" / "gen", web / "src" / "gen") == [], (
        f"web/src/gen {stale}"
    )
