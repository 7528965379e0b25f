"""The Prefect API auth string: the one owner of it (DESIGN.md, Security).

Flows run as root, so whoever reaches the Prefect API can run code as root: every server
Archetype starts has Prefect's basic auth on. The string is generated once per host and
kept in the workspace (``secrets/prefect-api-auth``, 0600, root only);
``PREFECT_SERVER_API_AUTH_STRING`` (server side) or ``PREFECT_API_AUTH_STRING`` (client
side) override it. It has the form ``user:password`` so that it is also what a REST caller
gives to ``curl -u`` and what a person types on the UI's login page.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from lab.errors import ArchetypeError
from lab.private import private_dir
from lab.settings import get_settings

SERVER_VARIABLE = "PREFECT_SERVER_API_AUTH_STRING"
CLIENT_VARIABLE = "PREFECT_API_AUTH_STRING"
USER = "archetype"


def auth_path() -> Path:
    return get_settings().workspace / "secrets" / "prefect-api-auth"


def auth_string(*, client: bool = False) -> str:
    """The host's auth string (an override from the environment first: the server's
    variable, or the client's for ``client``). Empty means: the user turned auth off on
    purpose (``PREFECT_SERVER_API_AUTH_STRING=``)."""
    order = (CLIENT_VARIABLE, SERVER_VARIABLE) if client else (SERVER_VARIABLE, CLIENT_VARIABLE)
    for variable in order:
        if variable in os.environ:
            return os.environ[variable]
    return _stored_or_new()


def _stored_or_new() -> str:
    path = auth_path()
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    except OSError as err:
        raise ArchetypeError(f"cannot read the Prefect API auth string {path}: {err.strerror} (run as root, "
                             f"or set {CLIENT_VARIABLE})") from None
    private_dir(path.parent)
    value = f"{USER}:{secrets.token_urlsafe(24)}"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".auth.")  # 0600 from the start
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(value + "\n")
        # link() fails if the file exists: two processes at once agree on the first string,
        # and no reader ever sees it half written.
        os.link(tmp, path)
    except FileExistsError:
        return path.read_text().strip()
    finally:
        os.unlink(tmp)
    return value


def server_env() -> dict[str, str]:
    """What a Prefect server process needs in its environment to require the string."""
    value = auth_string()
    return {SERVER_VARIABLE: value} if value else {}


def client_env() -> dict[str, str]:
    """What a Prefect client (CLI, worker, ``serve``) needs to be let in."""
    value = auth_string(client=True)
    return {CLIENT_VARIABLE: value} if value else {}
