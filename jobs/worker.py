"""The RQ worker classes the Procfile starts.

`AppWorker` (sync and default queues) builds the Flask app once, then forks a work horse per job:
a sync or a repricing pass that leaks or hangs dies with its horse. It runs at a lower CPU
priority (nice 10): when the cores are busy, a batch being sent and the trader's pages go first,
and the syncs, repricing and exports wait a little (they are not what a trader is watching).

`OrdersWorker` (the orders queue, and the strategies queue in a role of its own) runs each job in
its own long-lived process instead (RQ's SimpleWorker). A send is latency the trader watches, and
what makes it fast lives in the process: the broker connections kept alive (a new TLS connection to a broker costs
round trips before the order is even sent), the thread pool, the database pool, compiled statements. A horse forked per
batch started all of that cold (~110 ms per batch here, docs/BENCHMARKS.md). A worker killed
mid-send loses nothing either way: its heartbeat lapses within seconds (below), and the reclaim
cron breaks its child locks and resolves its children by tag. A candle close's evaluations are
latency too (a signal must reach the broker well inside the send deadline): a horse forked per
evaluation started cold (~0.7 s each); the `strategies` role runs them warm. Backtests, long CPU work,
have their own forking role so a sweep never delays the syncs and repricing on `worker`.

`AppWorker`'s children die with it. `--with-scheduler` forks a scheduler process, and RQ never
tells it when the worker is gone: a worker killed with SIGKILL left its scheduler running, holding
the scheduler lock (so no other worker schedules) and the supervisor's pipe, with nothing working
`sync`. Each child the worker forks (the scheduler and the horses) asks the kernel for a SIGTERM
when its parent dies: the scheduler then stops the way it does on a shutdown (releasing its lock),
and a horse stops too — with its worker gone nobody heartbeats its job, which RQ then counts as
abandoned, so a horse left running would only race the job's retry.

Both take what startup built out of the garbage collector's full passes (`gc.freeze`): a full
pass walks every tracked object, and the app's ~125,000 startup objects alone made each one stop
the process for ~60 ms, in the middle of a send (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import signal
import sys
import threading

from redis.exceptions import RedisError
from rq import SimpleWorker, Worker, worker_registration

from jobs.context import get_app

BACKGROUND_NICE = 10
PR_SET_PDEATHSIG = 1  # linux/prctl.h
_forking_pid = 0


def _note_forking_pid() -> None:
    global _forking_pid
    _forking_pid = os.getpid()


def _die_with_parent() -> None:
    """In a forked child: SIGTERM when the parent dies (Linux; elsewhere the old behaviour)."""
    if not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != _forking_pid:  # the parent died before the request was in place
        os.kill(os.getpid(), signal.SIGTERM)


# RQ's own per-job lines (rq/worker/base.py, all INFO there): a job taken, "Job OK", how long its
# result is kept, "Successfully completed", a queue's registries cleaned. Four lines per job, a
# hundred a minute from the cron's jobs alone, burying the one line per batch and per child
# outcome that jobs/orders.py writes. Shown at LOG_LEVEL=DEBUG.
RQ_CHATTER = (
    "Worker %s: %s: %s (%s)",  # a job taken (with its description), and "Job OK"
    "Worker %s: %s: %s",  # a job taken
    "Worker %s: job %s result is kept for %s seconds",
    "Worker %s: job %s result discarded immediately",
    "Worker %s: job %s result will never expire, clean up result key manually",
    "Successfully completed %s job in %ss on worker %s",
    "Successfully completed job %s in %ss on worker %s",
    "Worker %s: cleaning registries for queue: %s",
)
RQ_CRON_CHATTER = "Enqueued job "  # `rq cron`'s line per job it enqueues (rq/cron.py, an f-string)


def _chatter(record: logging.LogRecord) -> bool:
    if record.name == "rq.cron":
        return isinstance(record.msg, str) and record.msg.startswith(RQ_CRON_CHATTER)
    return record.msg in RQ_CHATTER


class RqChatterFilter(logging.Filter):
    """On the `rq.worker` and `rq.cron` loggers (jobs/settings.py): RQ's per-job INFO lines become
    DEBUG lines, dropped unless the process logs at DEBUG. Its other lines (started, stopping,
    errors) stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not _chatter(record):
            return True
        if not logging.getLogger(record.name).isEnabledFor(logging.DEBUG):
            return False
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


def follow_log_level() -> None:
    """RQ's command line pins the `rq.worker` logger at INFO (DEBUG with --verbose) after the
    config's logging is set up; let it follow the root's level (LOG_LEVEL, jobs/settings.py) instead."""
    logging.getLogger("rq.worker").setLevel(logging.NOTSET)


class SurvivesRedisOutages:
    """What a worker needs to outlive Redis going away, on top of its connection's retries (the rq
    commands run with `--connection-class webapp.redisconn.PatientRedis`, which retries every lost or
    timed-out command for ever, so none escapes RQ's loop to end the process).

    Redis restarted empty has forgotten the worker: its registration (`rq:workers`, the per-queue
    sets) and its hash are gone, and RQ only ever writes them at birth. Each heartbeat checks and
    registers again; an idle worker beats every worker-ttl − 15 s (the Procfile's 30: every 15 s),
    so it shows up again in `Worker.all()` within seconds of Redis coming back.
    """

    def heartbeat(self, timeout: int | None = None, pipeline=None):
        super().heartbeat(timeout, pipeline)
        if pipeline is None and not self.connection.sismember(self.redis_workers_keys, self.key):
            self.log.warning("Worker %s: not registered (Redis restarted empty?): registering again", self.name)
            with self.connection.pipeline() as again:
                again.hset(self.key, mapping=self.serialize())
                worker_registration.register(self, again)
                again.expire(self.key, timeout or self.worker_ttl + 60)
                again.execute()


class AppWorker(SurvivesRedisOutages, Worker):
    _fork_hook_installed = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        follow_log_level()
        if not AppWorker._fork_hook_installed:  # hooks cannot be removed: install once per process
            os.register_at_fork(before=_note_forking_pid, after_in_child=_die_with_parent)
            AppWorker._fork_hook_installed = True
        os.nice(BACKGROUND_NICE)  # horses inherit it
        get_app()  # import and configure once; horses inherit it
        gc.freeze()  # horses' collections skip what they inherit


LIVENESS_SECONDS = 5  # an orders worker's RQ heartbeat lapses this long after it dies mid-job
BEAT_SECONDS = 1


class OrdersWorker(SurvivesRedisOutages, SimpleWorker):
    """While a job runs, a thread renews the worker's and the job execution's RQ heartbeats every
    second with a 5-second TTL. RQ's SimpleWorker sends none during a job (it runs in the one
    thread) and registers the execution for the job's timeout + 60 s, so a worker SIGKILLed
    mid-send looked alive for 4 minutes. With this, its key and execution lapse within seconds,
    and the reclaim cron (jobs.orders.reclaim_orphans) resolves its children then."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        follow_log_level()
        self._beat_lock = threading.Lock()
        self._beat_stop = threading.Event()
        get_app()
        gc.freeze()

    def get_heartbeat_ttl(self, job) -> int:
        return LIVENESS_SECONDS

    def execute_job(self, job, queue) -> None:
        self._beat_stop = stop = threading.Event()
        beat = threading.Thread(target=self._beat, args=(job, stop), name="rq-heartbeat", daemon=True)
        beat.start()
        try:
            super().execute_job(job, queue)
        finally:
            self._stop_beating()
            beat.join()

    def handle_execution_ended(self, job, queue, heartbeat_ttl) -> None:
        self._stop_beating()  # before RQ removes the execution: a late beat would write it back
        super().handle_execution_ended(job, queue, heartbeat_ttl)

    def _stop_beating(self) -> None:
        with self._beat_lock:
            self._beat_stop.set()

    def _beat(self, job, stop: threading.Event) -> None:
        while not stop.wait(BEAT_SECONDS):
            with self._beat_lock:
                if stop.is_set():
                    return
                if self.execution is None:  # not registered yet
                    continue
                try:
                    with self.connection.pipeline() as pipe:
                        self.heartbeat(LIVENESS_SECONDS, pipeline=pipe)
                        self.execution.heartbeat(job.started_job_registry, LIVENESS_SECONDS, pipeline=pipe)
                        if pipe.execute()[0] == 1:  # the worker's hash had lapsed (Redis away): write it whole
                            self.connection.hset(self.key, mapping=self.serialize())
                except RedisError as exc:  # Redis away: the next beat tries again
                    self.log.warning("Worker %s: heartbeat failed: %s", self.name, exc)
