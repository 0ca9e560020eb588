"""The Docker image's entrypoint: one image, the command picks the role.

    python -m webapp.entrypoint web | worker | orders | cron | feed | migrate

`web` waits for the database and runs `flask db upgrade` first (microblog's boot.sh).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

PROCFILE = Path(__file__).resolve().parent.parent / "Procfile"


def procfile_roles(path: Path = PROCFILE) -> dict[str, list[str]]:
    """The Procfile is the one list of roles and their commands: this entrypoint (one role per
    container) and `make run`'s supervisor (webapp/launcher.py, every role) both read it."""
    roles = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            role, _, command = line.partition(":")
            roles[role.strip()] = shlex.split(command)
    return roles


ROLES = procfile_roles()


def worker_command(role: str, name: str) -> list[str]:
    """The role's `rq worker` command from the Procfile, run by this interpreter under a given
    worker name (tests and benchmarks start real workers exactly as the desk does)."""
    command = ROLES[role]
    assert command[:2] == ["rq", "worker"], f"{role} is not an rq worker"
    return [sys.executable, "-m", "rq.cli", *command[1:], "--name", name]


def migrate(attempts: int = 30) -> None:
    for attempt in range(1, attempts + 1):
        if subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"]).returncode == 0:
            return
        print(f"event=migrate state=waiting attempt={attempt}", flush=True)
        time.sleep(2)
    sys.exit("database not reachable: migrations did not run")


def main(argv: list[str]) -> None:
    role = argv[1] if len(argv) > 1 else "web"
    if role == "migrate":
        migrate()
        return
    if role not in ROLES:
        sys.exit(f"unknown role {role!r}: choose web, worker, orders, cron, feed or migrate")
    if role == "web":
        migrate()
    os.execvp(ROLES[role][0], ROLES[role])


if __name__ == "__main__":
    main(sys.argv)
