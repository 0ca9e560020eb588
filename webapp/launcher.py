"""`make run`: the whole desk on embedded defaults, in one command.

Starts the embedded Redis when REDIS_URL is unset, makes demo secrets once (kept in instance/),
migrates and seeds the database, then runs the Procfile's processes with honcho. Ctrl-C stops every
process it started.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from webapp.config import INSTANCE, ROOT
from webapp.vault import generate_key

SECRETS_FILE = INSTANCE / "demo-secrets.json"
ORDERS_WORKERS = 2  # `orders` processes: a big batch is split over them (jobs/orders.py)


def demo_secrets() -> dict[str, str]:
    """Secrets for the local demo, made once so restarts keep sessions and encrypted credentials."""
    if SECRETS_FILE.exists():
        return json.loads(SECRETS_FILE.read_text())
    import secrets

    values = {"SECRET_KEY": secrets.token_hex(32), "FANOUT_ENCRYPTION_KEYS": generate_key()}
    SECRETS_FILE.write_text(json.dumps(values))
    SECRETS_FILE.chmod(0o600)
    return values


def run_flask(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], env=env, cwd=ROOT, check=True)


def main() -> int:
    INSTANCE.mkdir(exist_ok=True)
    env = dict(os.environ)
    # the Procfile's commands (gunicorn, rq) live beside this interpreter in the virtualenv
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("FANOUT_DEMO", "1")
    env.setdefault("PORT", "8000")
    env.setdefault("PYTHONUNBUFFERED", "1")
    for key, value in demo_secrets().items():
        env.setdefault(key, value)
    embedded = None
    if not env.get("REDIS_URL"):
        from webapp.embedded_redis import EmbeddedRedis

        embedded = EmbeddedRedis(data_dir=INSTANCE / "redis", persist=True).start()
        env["REDIS_URL"] = embedded.url
    try:
        run_flask(env, "db", "upgrade")
        run_flask(env, "demo", "seed")
        password = env.get("DEMO_PASSWORD", "fanout-demo")
        print(f"\n  Fanout is starting at http://127.0.0.1:{env['PORT']}\n"
              f"  Demo logins: admin / trader / viewer, password: {password}\n"
              f"  Redis: {env['REDIS_URL']}{' (embedded)' if embedded else ''}\n  Ctrl-C stops everything.\n",
              flush=True)
        honcho = [sys.executable, "-m", "honcho", "-f", str(ROOT / "Procfile"), "-d", str(ROOT), "start",
                  "-c", f"orders={ORDERS_WORKERS}"]
        process = subprocess.Popen(honcho, env=env, cwd=ROOT)
        try:
            return process.wait()
        except KeyboardInterrupt:  # honcho got the same SIGINT and stops its children
            return process.wait()
    finally:
        if embedded:
            embedded.stop()


if __name__ == "__main__":
    sys.exit(main())
