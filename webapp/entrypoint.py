"""The Docker image's entrypoint: one image, the command picks the role.

    python -m webapp.entrypoint web | worker | orders | cron | feed | migrate

`web` waits for the database and runs `flask db upgrade` first (microblog's boot.sh).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

ROLES = {
    "web": ["gunicorn", "--config", "webapp/gunicorn_conf.py", "wsgi:app"],
    "worker": ["rq", "worker", "--worker-class", "jobs.worker.AppWorker", "--config", "jobs.settings",
               "--with-scheduler", "sync", "default"],
    "orders": ["rq", "worker", "--worker-class", "jobs.worker.OrdersWorker", "--config", "jobs.settings", "orders"],
    "cron": ["rq", "cron", "--config", "jobs.settings", "jobs.cron"],
    "feed": ["flask", "--app", "wsgi", "feed", "run"],
}


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
