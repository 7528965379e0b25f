"""The README's REST example works as written against `archetype serve` (auth on): only the
workspace and the port are this test's own."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.prefect_server import ARCHETYPE, REPO, free_port, stop_process

pytestmark = [pytest.mark.prefect, pytest.mark.slow]
CLEARED = ("PREFECT_API_URL", "PREFECT_API_AUTH_STRING", "PREFECT_SERVER_API_AUTH_STRING", "PREFECT_HOME")


def readme_rest_example() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("**From the REST API**"):]
    return re.search(r"```sh\n(.*?)```", section, re.DOTALL).group(1)


def test_the_readme_curl_example_creates_a_run(tmp_path: Path) -> None:
    workspace, port = tmp_path / "ws", free_port()
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env.update(ARCHETYPE_WORKSPACE=str(workspace), ARCHETYPE_SERVER_PORT=str(port))
    serve = subprocess.Popen([ARCHETYPE, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        auth_file = workspace / "secrets" / "prefect-api-auth"
        script = readme_rest_example().replace("/var/lib/archetype", str(workspace)).replace(":4200", f":{port}")
        done = None
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:  # serve has registered its deployments
            assert serve.poll() is None, "archetype serve exited"
            if auth_file.exists():
                done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=env, capture_output=True,
                                      text=True, timeout=120)
                if done.returncode == 0:
                    break
            time.sleep(2)
        assert done is not None and done.returncode == 0, done and done.stderr
        run = json.loads(done.stdout)
        assert run["parameters"] == {"topology": "/srv/labs/demo.yml"} and run["deployment_id"]
    finally:
        stop_process(serve)
        subprocess.run([ARCHETYPE, "server", "stop"], env=env, capture_output=True, timeout=60)
