"""`make run`: the whole desk on embedded defaults, in one command.

Makes demo secrets once (kept in instance/), starts supervisord with the embedded Redis when
REDIS_URL is unset, migrates and seeds the database, then has supervisord start every role of the
Procfile.

Supervision: a process that exits (a crash, SIGKILL, the OOM killer) is restarted and the others
keep running; supervisord logs each exit and restart. One that stays up `STARTSECS` and then dies
is restarted at once; one that dies sooner waits 1 s before its next start, then 2 s, 3 s, … (one
more second per failed start in a row, supervisord's backoff), and is never given up on
(`STARTRETRIES` is out of reach) — a process that cannot start while Redis or the database is away
comes back by itself after the outage.

Output: each process writes to its own file in instance/logs/ (kept, rotated at 10 MB), and the
launcher copies every new line to the console behind the process's name (`orders-1 | …`), and
supervisord's own (spawned, exited, stopped; instance/logs/supervisord.log) behind `supervisor`.

The embedded Redis is a supervised program too: started first, restarted like the others if it
dies (its append-only file brings back what it held; the roles wait for it and reconnect, see
webapp/redisconn.py), and stopped last.

Stopping: Ctrl-C (SIGINT to the terminal's process group) or SIGTERM to the launcher makes
supervisord stop the roles — web first, the workers last so they finish the job in hand — each
with the signal it treats as a clean shutdown, and its whole process group (no orphan survives);
then Redis, once nothing uses it.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from webapp.config import INSTANCE, ROOT
from webapp.embedded_redis import die_with_parent
from webapp.entrypoint import procfile_roles
from webapp.vault import generate_key

SECRETS_FILE = INSTANCE / "demo-secrets.json"
ORDERS_WORKERS = 2  # `orders` processes: a big batch is split over them (jobs/orders.py)
STARTSECS = 5  # up this long counts as started: a later exit restarts at once, an earlier one backs off
STARTRETRIES = 1_000_000  # supervisord gives up after this many failed starts in a row: never, here
# supervisord starts in ascending priority and stops in descending: the web stops taking tickets
# first, the workers stop last (after the job in hand: stopwaitsecs)
PRIORITY = {
    "redis": 1,
    "orders": 100,
    "strategies": 150,
    "worker": 200,
    "backtests": 250,
    "feed": 300,
    "cron": 400,
    "web": 500,
}
# each role's clean shutdown: gunicorn drains on SIGTERM (graceful_timeout); rq workers, rq cron and
# the feed stop on SIGINT as on a Ctrl-C (a worker's horse ignores it and finishes its job)
STOPSIGNAL = {"web": "TERM", "redis": "TERM"}
STOPWAITSECS = 20  # then SIGKILL to the process group


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


def config_path() -> Path:
    return INSTANCE / "supervisord.conf"


def process_names(role: str) -> list[str]:
    return [f"{role}-{n}" for n in range(ORDERS_WORKERS)] if role == "orders" else [role]


def supervisor_config(roles: dict[str, list[str]], instance: Path, redis: list[str] | None = None) -> str:
    """supervisord's configuration: the embedded Redis (when given its command), started at once, and
    one program per Procfile role, started by `start_roles` once the database is ready. No secrets
    in it: the processes inherit them from supervisord's environment."""

    def path(p: Path) -> str:
        return str(p).replace("%", "%%")  # supervisord expands %(name)s in values

    logs = instance / "logs"
    sections = [
        # silent: its own lines go to its log file only, which the console follows like the others
        "[supervisord]",
        "nodaemon=true",
        "silent=true",
        "loglevel=info",
        f"logfile={path(logs / 'supervisord.log')}",
        "logfile_maxbytes=10MB",
        "logfile_backups=3",
        f"pidfile={path(instance / 'supervisord.pid')}",
        f"childlogdir={path(logs)}",
        *(["user=root"] if os.geteuid() == 0 else []),  # as in a container: said, or it logs a CRIT line
        "",
        # `supervisorctl -c instance/supervisord.conf status` (or restart orders:*) talks to it here
        "[unix_http_server]",
        f"file={path(instance / 'supervisor.sock')}",
        "chmod=0700",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{path(instance / 'supervisor.sock')}",
        "",
    ]
    programs = {"redis": redis, **roles} if redis else roles
    for role, command in programs.items():
        sections += [
            f"[program:{role}]",
            f"command={shlex.join(command).replace('%', '%%')}",
            f"directory={path(ROOT)}",
            f"priority={PRIORITY.get(role, 600)}",
            f"autostart={'true' if role == 'redis' else 'false'}",
            "autorestart=true",
            f"startsecs={STARTSECS}",
            f"startretries={STARTRETRIES}",
            f"stopsignal={STOPSIGNAL.get(role, 'INT')}",
            f"stopwaitsecs={STOPWAITSECS}",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            f"stdout_logfile={path(logs)}/%(program_name)s{'-%(process_num)s' if role == 'orders' else ''}.log",
            "stdout_logfile_maxbytes=10MB",
            "stdout_logfile_backups=3",
        ]
        if role == "orders":
            sections += [f"numprocs={ORDERS_WORKERS}", "process_name=%(program_name)s-%(process_num)s"]
        sections.append("")
    return "\n".join(sections)


class Console:
    """Copies each process's new log lines to the launcher's stdout behind its name, so the console
    still says who said what. Follows supervisord's rotation (the file is renamed, a new one made)."""

    def __init__(self, files: dict[str, Path]):
        self.files = files
        self.width = max(len(name) for name in files)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        # a file kept from an earlier run is followed from its end; a new one from its start
        self.start_at = {name: p.stat().st_size if p.exists() else 0 for name, p in files.items()}
        self.thread = threading.Thread(target=self._follow, name="console", daemon=True)

    def write(self, name: str, line: str) -> None:
        with self.lock:
            try:
                sys.stdout.write(f"{name:<{self.width}} | {line.rstrip()}\n")
                sys.stdout.flush()
            except (OSError, ValueError):  # the console went away (a closed pipe): the desk runs on,
                pass  # and every line is still in instance/logs/

    def _follow(self) -> None:
        opened: dict[str, tuple] = {}  # name → (file, inode, unfinished line)
        while True:
            stopping = self.stopping.is_set()  # read before the last pass, so nothing written is missed
            for name, path in self.files.items():
                opened[name] = self._drain(name, path, opened.get(name))
            if stopping:
                break
            time.sleep(0.2)
        for handle, _, _ in filter(None, opened.values()):
            handle.close()

    def _drain(self, name: str, path: Path, state):
        try:
            inode = path.stat().st_ino
        except FileNotFoundError:  # not started yet
            return state
        if state is None or state[1] != inode:
            if state is not None:  # rotated: finish the old file first
                self._read(name, state)
                state[0].close()
            handle = path.open("r", errors="replace")
            handle.seek(self.start_at.pop(name, 0))
            state = (handle, inode, "")
        return self._read(name, state)

    def _read(self, name: str, state):
        handle, inode, partial = state
        for line in handle:
            if not line.endswith("\n"):
                partial += line
                break
            self.write(name, partial + line)
            partial = ""
        return handle, inode, partial

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)


class Supervisor:
    """supervisord, run by the launcher: `start` (Redis comes up with it), `start_roles`, `wait`.
    From `start` on, Ctrl-C (which reaches supervisord too) or a SIGTERM to the launcher alone
    (passed on) stops everything, whatever the launcher is doing."""

    def __init__(self, roles: dict[str, list[str]], redis: list[str] | None):
        self.roles = roles
        self.stopping = False
        logs = INSTANCE / "logs"
        logs.mkdir(exist_ok=True)
        config_path().write_text(supervisor_config(roles, INSTANCE, redis))
        names = (["redis"] if redis else []) + [name for role in roles for name in process_names(role)]
        self.console = Console({"supervisor": logs / "supervisord.log", **{n: logs / f"{n}.log" for n in names}})
        self.process: subprocess.Popen | None = None
        self._previous: dict = {}

    def start(self, env: dict[str, str]) -> None:
        self.console.start()
        self._previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        # supervisord stops everything if the launcher itself is killed (SIGKILL gives no chance to
        # forward a signal). It writes nothing through the launcher, which may be gone by then.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "supervisor.supervisord", "-c", str(config_path())],
            env=env,
            cwd=ROOT,
            preexec_fn=die_with_parent,
        )

    def _on_signal(self, signum, frame) -> None:
        self.stopping = True
        self.stop()

    def start_roles(self, timeout: float = 30.0) -> None:
        """Start every role, without waiting for each to count as started (STARTSECS)."""
        import xmlrpc.client

        from supervisor.xmlrpc import SupervisorTransport

        control = xmlrpc.client.ServerProxy(
            "http://localhost", transport=SupervisorTransport(serverurl=f"unix://{INSTANCE / 'supervisor.sock'}")
        )
        deadline = time.monotonic() + timeout
        while True:  # its control socket may not be listening yet
            try:
                for role in self.roles:
                    control.supervisor.startProcessGroup(role, False)
                return
            except (OSError, xmlrpc.client.Fault):
                if self.stopping or self.process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self) -> int:
        """Until supervisord has stopped everything; its exit status."""
        try:
            return self.process.wait()
        finally:
            for s, handler in self._previous.items():
                signal.signal(s, handler)
            self.console.stop()


def main() -> int:
    INSTANCE.mkdir(exist_ok=True)
    env = dict(os.environ)
    # the Procfile's commands (gunicorn, rq, flask) live beside this interpreter in the virtualenv
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("FANOUT_DEMO", "1")
    env.setdefault("PORT", "8000")
    env.setdefault("PYTHONUNBUFFERED", "1")
    for key, value in demo_secrets().items():
        env.setdefault(key, value)
    embedded = None
    if not env.get("REDIS_URL"):
        from webapp.embedded_redis import EmbeddedRedis

        embedded = EmbeddedRedis(data_dir=INSTANCE / "redis", persist=True)
        env["REDIS_URL"] = embedded.url
    supervisor = Supervisor(procfile_roles(), embedded.command() if embedded else None)
    supervisor.start(env)
    try:
        if embedded:
            embedded.wait_ready(timeout=30)
        run_flask(env, "db", "upgrade")
        run_flask(env, "demo", "seed")
        supervisor.start_roles()
    except Exception:
        supervisor.stop()
        if supervisor.stopping:  # stopped while booting (the migration saw the Ctrl-C too): not an error
            return supervisor.wait() or 130
        supervisor.wait()
        raise
    password = env.get("DEMO_PASSWORD", "fanout-demo")
    print(
        f"\n  Fanout is starting at http://127.0.0.1:{env['PORT']}\n"
        f"  Demo logins: admin / trader / viewer, password: {password}\n"
        f"  Redis: {env['REDIS_URL']}{' (embedded)' if embedded else ''}\n"
        f"  Logs: {INSTANCE / 'logs'}\n"
        f"  Processes: {Path(sys.executable).parent / 'supervisorctl'} -c {config_path()} status\n"
        f"  Ctrl-C stops everything.\n",
        flush=True,
    )
    return supervisor.wait()


if __name__ == "__main__":
    sys.exit(main())
