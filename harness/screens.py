"""What a person sees: the terminal client in a tmux pane, and Debian's Chromium for the page."""

import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from harness.paths import ROOT

CHROMIUM = Path("/usr/bin/chromium")
"""Debian's chromium, which the page's tests drive through Playwright (never a browser of its
own: Playwright's downloads are not used)."""
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
"""Chromium without the network traffic of its own it would make (updates, sync)."""


SCREEN_WAIT = 15.0
"""How long a test waits for the screen to show something before it fails."""
EXITED = re.compile(r"\[exited (\d+)\]")


class Screen:
    """`python -m chat.client ARGS` in a 120x40 tmux pane; `[exited N]` is printed when it ends."""

    def __init__(self, socket: str, args: list[str], env: dict[str, str]) -> None:
        self._tmux = ["tmux", "-L", socket, "-f", "/dev/null"]
        command = shlex.join([sys.executable, "-m", "chat.client", *args])
        settings = [f"-e{key}={value}" for key, value in env.items()]
        shell = f'cd {shlex.quote(str(ROOT))} && {command}; echo "[exited $?]"; sleep 600'
        self._run("new-session", "-d", "-x", "120", "-y", "40", *settings, shell)

    def _run(self, *args: str) -> str:
        return subprocess.run(
            [*self._tmux, *args], capture_output=True, text=True, check=True, timeout=10
        ).stdout

    def type(self, line: str) -> None:
        """Types `line` and presses Enter."""
        self._run("send-keys", "-l", line)
        self._run("send-keys", "Enter")

    def write(self, text: str) -> None:
        """Types `text` without pressing Enter."""
        self._run("send-keys", "-l", text)

    def press(self, key: str) -> None:
        """Presses a key by its tmux name: C-c, C-d."""
        self._run("send-keys", key)

    def text(self) -> str:
        """Everything in the pane, its scrollback included, as plain lines."""
        return self._run("capture-pane", "-p", "-J", "-S", "-")

    def title(self) -> str:
        """The pane's title, which a program may set (`ESC ] 0 ; TITLE BEL`)."""
        return self._run("display-message", "-p", "#{pane_title}").rstrip("\n")

    def wait_for(self, pattern: str) -> str:
        """The screen once `pattern` (a regex) shows on it; fails the test after SCREEN_WAIT."""
        deadline = time.monotonic() + SCREEN_WAIT
        while True:
            screen = self.text()
            if re.search(pattern, screen, re.MULTILINE):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not on the screen:\n{screen}")
            time.sleep(0.05)  # a poll of the screen, not a synchronisation

    def exit_status(self) -> int:
        """The client's exit code, once it has exited."""
        match = EXITED.search(self.wait_for(EXITED.pattern))
        assert match is not None
        return int(match.group(1))

    def close(self) -> None:
        subprocess.run([*self._tmux, "kill-server"], capture_output=True, timeout=10)
