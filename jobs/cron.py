"""`rq cron jobs.cron`: the periodic jobs. Run exactly one cron process (rq cron has no lock).

Targets are idempotent: running one twice does no harm.
"""
from rq import cron

from jobs import brokers, heartbeat
from webapp.tasks import QUEUE_DEFAULT, QUEUE_SYNC

cron.register(heartbeat.beat, queue_name=QUEUE_DEFAULT, interval=30, result_ttl=300, failure_ttl=3600)
# brokers kill tokens every morning (06:00 IST for Kite and Motilal): mark them before anyone trades
cron.register(brokers.expire_sessions, queue_name=QUEUE_SYNC, interval=300, result_ttl=300, failure_ttl=3600)
