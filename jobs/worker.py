"""The RQ worker classes the Procfile starts.

`AppWorker` (sync and default queues) builds the Flask app once, then forks a work horse per job:
a sync or a repricing pass that leaks or hangs dies with its horse. It runs at a lower CPU
priority (nice 10): when the cores are busy, a batch being sent and the trader's pages go first,
and the syncs, repricing and exports wait a little (they are not what a trader is watching).

`OrdersWorker` (the orders queue) runs each job in its own long-lived process instead (RQ's
SimpleWorker). A send is latency the trader watches, and what makes it fast lives in the process:
the broker connections kept alive (a new TLS connection to a broker costs round trips before the
order is even sent), the thread pool, the database pool, compiled statements. A horse forked per
batch started all of that cold (~110 ms per batch here, docs/BENCHMARKS.md). A worker killed
mid-send loses nothing either way: the job is retried or the reconcile cron finds its children.

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
import os
import signal
import sys

from rq import SimpleWorker, Worker

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


class AppWorker(Worker):
    _fork_hook_installed = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not AppWorker._fork_hook_installed:  # hooks cannot be removed: install once per process
            os.register_at_fork(before=_note_forking_pid, after_in_child=_die_with_parent)
            AppWorker._fork_hook_installed = True
        os.nice(BACKGROUND_NICE)  # horses inherit it
        get_app()  # import and configure once; horses inherit it
        gc.freeze()  # horses' collections skip what they inherit


class OrdersWorker(SimpleWorker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        get_app()
        gc.freeze()
