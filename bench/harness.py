"""What every benchmark shares: child processes in their own process groups (all stopped at the
end, even on error), free ports, percentiles, the machine and the versions a result was taken on.

Benchmarks print progress to stderr and exactly one JSON object as the last stdout line.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # gunicorn, rq and flask live beside this interpreter


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def emit(result: dict) -> None:
    """The result: one JSON object, the last line on stdout."""
    sys.stdout.flush()
    print(json.dumps(result, default=str), flush=True)


# ---------------------------------------------------------------- processes


class Processes:
    """Child processes, each the leader of its own process group, so stopping one also stops what
    it forked (gunicorn's workers, an RQ work horse)."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.started: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: Sequence[str], env: dict[str, str], stdout=None) -> subprocess.Popen:
        with open(self.log_dir / f"{name}.log", "ab") as log_file:  # the child holds its own descriptor
            process = subprocess.Popen(
                list(argv),
                env=env,
                cwd=ROOT,
                start_new_session=True,
                stdout=stdout if stdout is not None else log_file,
                stderr=log_file,
            )
        self.started.append((name, process))
        return process

    def pids(self, prefix: str) -> list[int]:
        return [p.pid for name, p in self.started if name.startswith(prefix) and p.poll() is None]

    def check_alive(self) -> None:
        for name, process in self.started:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}; see {self.log_dir / (name + '.log')}")

    def stop_all(self, grace: float = 10.0) -> None:
        for _, process in reversed(self.started):
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for _, process in reversed(self.started):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for _, process in reversed(self.started):
            _signal_group(process, signal.SIGKILL)  # whatever is left in the group (horses, gunicorn workers)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            for stream in (process.stdout, process.stderr):
                if stream:
                    stream.close()
        self.started.clear()


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)  # start_new_session: the group id is the child's pid
    except (ProcessLookupError, PermissionError):
        pass


def stop_on_signals() -> None:
    """SIGTERM/SIGHUP raise SystemExit, so `finally:` blocks stop the children."""

    def handler(signum, _frame):
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


def wait_http(url: str, timeout: float = 30.0, processes: Processes | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if processes:
            processes.check_alive()
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {timeout:g} s")


# ---------------------------------------------------------------- numbers


def percentile(values: Iterable[float], pct: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    data = sorted(values)
    if not data:
        return None
    rank = (len(data) - 1) * pct / 100.0
    low = int(rank)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


def summary(values: Sequence[float], digits: int = 1) -> dict[str, float | int | None]:
    def rounded(v):
        return None if v is None else round(v, digits)

    return {
        "n": len(values),
        "p50": rounded(percentile(values, 50)),
        "p95": rounded(percentile(values, 95)),
        "min": rounded(min(values) if values else None),
        "max": rounded(max(values) if values else None),
    }


# ---------------------------------------------------------------- where a result was taken


def machine() -> dict:
    info = {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "system": f"{platform.system()} {platform.release()}",
        "arch": platform.machine(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["mem_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return info


def versions(*packages: str) -> dict[str, str]:
    found = {}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        if commit:
            found["fanout"] = commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    if "fanout" not in found and os.environ.get("FANOUT_REVISION"):  # an exported tree, not a checkout
        found["fanout"] = os.environ["FANOUT_REVISION"]
    return found


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def machine_cpu_seconds() -> float:
    """CPU seconds every process on the machine has used (busy time in /proc/stat, all cores)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def wait_quiet(max_wait: float, busy_pct: float = 10.0, sample: float = 3.0) -> float:
    """Wait (up to max_wait seconds) until the machine is idle: less than busy_pct of all cores used
    over `sample` seconds. Returns the busy percentage last seen."""
    deadline = time.monotonic() + max_wait
    cores = os.cpu_count() or 1
    while True:
        before = machine_cpu_seconds()
        time.sleep(sample)
        busy = 100 * (machine_cpu_seconds() - before) / (sample * cores)
        if busy < busy_pct or time.monotonic() > deadline:
            return round(busy, 1)
        log(f"machine {busy:.0f}% busy with other work; waiting for it to settle")


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def rss_mib(pids: Iterable[int]) -> dict:
    """Resident memory of each process and its descendants (psutil), in MiB."""
    import psutil

    per_root, total = {}, 0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            tree = [root] + root.children(recursive=True)
        except psutil.NoSuchProcess:
            continue
        rss = 0
        for proc in tree:
            try:
                rss += proc.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        per_root[str(pid)] = {"processes": len(tree), "rss_mib": round(rss / 2**20, 1)}
        total += rss
    return {"total_mib": round(total / 2**20, 1), "by_pid": per_root}


def add_service_args(parser) -> None:
    """The options every benchmark takes for the services it runs against and its temp dir."""
    parser.add_argument("--database-url", default=None, help="an empty database (default: a temp SQLite file)")
    parser.add_argument("--redis-url", default=None, help="a Redis db the bench may flush (default: embedded Redis)")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait up to this long for the machine to be idle (<10%% CPU busy)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (process logs) and print its path")


def run_bench(name: str, args, body, failure: dict, on_error=None) -> int:
    """Run `body(tmp, processes, started)` in a fresh temp dir and print its result as the last line.
    On an error the last line is still one JSON object, saying what went wrong. Whatever the run
    started is stopped at the end: its processes, the embedded Redis (`started["redis"]`) and any
    sockets it opened (`started["sockets"]`)."""
    import shutil
    import tempfile
    import traceback

    stop_on_signals()
    tmp = Path(tempfile.mkdtemp(prefix=f"fanout-bench-{name}-"))
    processes = Processes(tmp)
    started: dict = {"sockets": []}
    try:
        result = body(tmp, processes, started)
    except Exception as exc:
        traceback.print_exc()
        if on_error is not None:
            on_error(tmp, exc)
        result = {
            "bench": name,
            **failure,
            "ok": False,
            "error": f"{type(exc).__name__}: {exc}",
            "logs": str(tmp) if args.keep else None,
        }
    finally:
        for ws in started["sockets"]:
            try:
                ws.close()
            except Exception:
                pass
        processes.stop_all()
        if started.get("redis") is not None:
            started["redis"].stop()
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    emit(result)
    return 0 if result.get("ok") else 1
