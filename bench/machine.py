"""Where a benchmark ran: the figures mean little without the machine and the versions."""

import os
import platform
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

PACKAGES = ("grpclib", "betterproto", "h2", "grpcio", "uvloop")


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


@dataclass(frozen=True)
class Machine:
    cpu: str = field(default_factory=_cpu_model)
    cores: int = field(default_factory=lambda: os.cpu_count() or 1)
    system: str = field(default_factory=lambda: f"{platform.system()} {platform.release()}")
    python: str = field(default_factory=platform.python_version)
    packages: dict[str, str] = field(
        default_factory=lambda: {name: metadata.version(name) for name in PACKAGES}
    )

    def line(self) -> str:
        versions = ", ".join(f"{name} {version}" for name, version in self.packages.items())
        return f"{self.cpu}, {self.cores} cores, {self.system}, Python {self.python}; {versions}"
