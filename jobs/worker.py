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

Both take what startup built out of the garbage collector's full passes (`gc.freeze`): a full
pass walks every tracked object, and the app's ~125,000 startup objects alone made each one stop
the process for ~60 ms, in the middle of a send (docs/BENCHMARKS.md).
"""
from __future__ import annotations

import gc
import os

from rq import SimpleWorker, Worker

from jobs.context import get_app


BACKGROUND_NICE = 10


class AppWorker(Worker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        os.nice(BACKGROUND_NICE)  # horses inherit it
        get_app()  # import and configure once; horses inherit it
        gc.freeze()  # horses' collections skip what they inherit


class OrdersWorker(SimpleWorker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        get_app()
        gc.freeze()
