"""The entry point's choice of what the executor may run, and the handoff's messages (a
real socket pair, descriptors attached)."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from archetype import handoff, launch


@pytest.mark.parametrize(("argv", "expected"), [
    (["deploy", "lab.yml", "--json"], True),
    (["status"], True),
    (["exec", "lab", "r1", "--", "ip", "-br", "a"], True),
    (["connect", "lab", "r1"], False),  # an interactive terminal of its own
    (["capture", "lab", "r1:eth1"], False),  # tcpdump gets the terminal's Ctrl-C
    (["serve"], False),
    (["server", "stop"], False),
    (["deploy", "--help"], False),
    ([], False),
])
def test_which_commands_the_executor_may_run(argv: list[str], expected: bool) -> None:
    assert launch._servable(launch._command(argv), argv) is expected


def test_the_environment_is_compared_on_prefect_variables_after_the_defaults() -> None:
    env = {"ARCHETYPE_WORKSPACE": "/srv/labs", "PATH": "/bin"}
    handoff.apply_defaults(env)
    assert handoff.socket_path(env) == handoff.Path("/srv/labs/prefect/executor.sock")
    assert handoff.prefect_environment(env) == {"PREFECT_HOME": "/srv/labs/prefect",
                                                "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


def test_a_message_arrives_whole_with_its_descriptors() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    read_end, write_end = os.pipe()
    big = {"env": {f"V{i}": "x" * 100 for i in range(3000)}}  # ~330 kB: more than one socket buffer
    try:
        sender = threading.Thread(target=handoff.send, args=(ours, big, [write_end]))
        sender.start()
        fds: list[int] = []
        assert handoff.receive(theirs, fds) == big
        sender.join()
        (received,) = fds
        os.write(received, b"through the passed descriptor")
        assert os.read(read_end, 100) == b"through the passed descriptor"
        os.close(received)
        ours.close()
        assert handoff.receive(theirs) is None  # the end of the stream
    finally:
        for fd in (read_end, write_end):
            os.close(fd)
        theirs.close()
