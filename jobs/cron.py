"""`rq cron jobs.cron`: the periodic jobs. Run exactly one cron process (rq cron has no lock).

Targets are idempotent: running one twice does no harm.
"""
from rq import cron

from jobs import heartbeat
from webapp.tasks import QUEUE_DEFAULT

cron.register(heartbeat.beat, queue_name=QUEUE_DEFAULT, interval=30, result_ttl=300, failure_ttl=3600)
