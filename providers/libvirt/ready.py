"""Readiness of a VM from its serial log, watched without attaching to the console.

The domain's ``<serial><log file=... append='on'/>`` is emptied by the provider before every boot and fed
by virtlogd. ``SerialLogWatcher`` tails it from the last offset it read (cheap: a stat and
the new bytes, every ~0.1 s), so a pattern is seen within one poll of being written.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]")
_OVERLAP = 4096  # text kept from the previous read, so a pattern split across reads is found


class SerialLogWatcher:
    def __init__(self, path: Path, pattern: str):
        self.path = path
        self.pattern = re.compile(pattern, re.IGNORECASE | re.MULTILINE)
        self.offset = 0
        self._tail = ""
        self._inode: int | None = None

    def poll(self) -> re.Match[str] | None:
        """Read what was appended since the last poll; the match, if the pattern is there."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return None
        if stat.st_ino != self._inode or stat.st_size < self.offset:  # a new log: the VM restarted
            self._inode, self.offset, self._tail = stat.st_ino, 0, ""
        if stat.st_size == self.offset:
            return None
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read(stat.st_size - self.offset)
        self.offset += len(data)
        text = self._tail + _ANSI.sub("", data.decode("utf-8", errors="replace"))
        match = self.pattern.search(text)
        self._tail = text[-_OVERLAP:]
        return match

    def last_lines(self, count: int = 5) -> str:
        return "\n".join(self._tail.replace("\r", "").splitlines()[-count:])
