"""Console text as a person reads it: terminal escape codes removed as the output arrives
(so prompt regexes see plain text), carriage returns, backspaces and line erasures applied,
the command's echo dropped. Pure text functions, apart from the pexpect child class."""

from __future__ import annotations

import re

import pexpect

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[=>78DEHMNOZc]")
LINE_START = r"(?:^|[\r\n])(?:\x1b\[[0-?]*[ -/]*[@-~])*"  # where a prompt may start
_PARTIAL_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*|[()])?$")
_KEEP = re.compile(r"\x1b\[[0-2]?K")  # erase-in-line: render() needs it


class PlainTextSpawn(pexpect.spawn):
    """A pexpect child whose output reaches the matcher without terminal escape codes
    (bold prompts, colours, cursor moves), so the vendor's prompt regexes see plain text.
    A sequence split across two reads is held back until it is complete."""

    _carry = ""

    def read_nonblocking(self, size: int = 1, timeout: float | None = -1) -> str:
        data = self._carry + super().read_nonblocking(size, timeout)
        partial = _PARTIAL_ESCAPE.search(data)
        if partial:
            data, self._carry = data[: partial.start()], partial.group()
        else:
            self._carry = ""
        return _ANSI.sub(lambda m: m.group() if _KEEP.fullmatch(m.group()) else "", data)


def render(text: str) -> str:
    """What a terminal would show: escape codes dropped, ``\\r`` and backspaces applied
    (so ``--More--`` erasures and redrawn lines come out as plain lines), lines right-stripped."""
    text = text.replace("\r\n", "\n")
    lines: list[str] = []
    line: list[str] = []
    cursor = 0
    pos = 0
    while pos < len(text):
        char = text[pos]
        if char == "\x1b":
            match = _ANSI.match(text, pos)
            if match:
                if match.group().endswith("K"):  # erase to end of line
                    del line[cursor:]
                pos = match.end()
                continue
        if char == "\n":
            lines.append("".join(line).rstrip())
            line, cursor = [], 0
        elif char == "\r":
            cursor = 0
        elif char == "\b":
            cursor = max(0, cursor - 1)
        elif char == "\t" or char >= " " and char != "\x7f":
            if cursor < len(line):
                line[cursor] = char
            else:
                line.extend(" " * (cursor - len(line)))
                line.append(char)
            cursor += 1
        pos += 1
    lines.append("".join(line).rstrip())
    return "\n".join(lines)


def strip_echo(text: str, command: str) -> str:
    """Drop the echoed command line from rendered output. The echo may carry the prompt
    before it, or be wrapped over a few lines by the guest's line editor: compare without
    whitespace over the first lines."""
    lines = text.split("\n")
    wanted = "".join(command.split())
    if not wanted:
        return "\n".join(lines[1:]) if len(lines) > 1 and not lines[0].strip() else text
    seen = ""
    for index, line in enumerate(lines[:6]):
        seen += "".join(line.split())
        if wanted in seen:
            return "\n".join(lines[index + 1 :])
    return text


def clean_output(raw: str, command: str) -> str:
    text = strip_echo(render(raw), command)
    return text.strip("\n")
