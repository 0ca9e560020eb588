"""`rq cron jobs.cron`: the periodic jobs. Run exactly one cron process (rq cron has no lock).

Targets are idempotent: running one twice does no harm.
"""

import os

from rq import cron

from jobs import api, automation, brokers, heartbeat, hooks, market, notify, orders, risk
from webapp.tasks import QUEUE_DEFAULT, QUEUE_ORDERS, QUEUE_STRATEGIES, QUEUE_SYNC

cron.register(heartbeat.beat, queue_name=QUEUE_DEFAULT, interval=30, result_ttl=300, failure_ttl=3600)
# brokers kill tokens every morning (06:00 IST for Kite and Motilal): mark them before anyone trades
cron.register(brokers.expire_sessions, queue_name=QUEUE_SYNC, interval=300, result_ttl=300, failure_ttl=3600)
# children a dead worker left NEW, SUBMITTING or UNKNOWN: resolved by tag, never sent blindly
cron.register(orders.reconcile, queue_name=QUEUE_ORDERS, interval=15, result_ttl=60, failure_ttl=3600)
# children of an orders worker that died: found within seconds (its heartbeat lapses) and resolved by tag
cron.register(orders.reclaim_orphans, queue_name=QUEUE_ORDERS, interval=2, result_ttl=10, failure_ttl=600)
# fills and states of orders live at the broker; funds and holdings of every connected client
cron.register(orders.sync_open_orders, queue_name=QUEUE_SYNC, interval=5, result_ttl=30, failure_ttl=3600)
# position sync: every connected client's positions, orders, trades, holdings and funds against the ledger
cron.register(
    orders.sync_all_clients,
    queue_name=QUEUE_SYNC,
    interval=int(os.environ.get("POSITION_SYNC_SECONDS", "30")),
    result_ttl=60,
    failure_ttl=3600,
)
# mark every open position to market from the feed's prices
cron.register(market.reprice, queue_name=QUEUE_SYNC, interval=2, result_ttl=10, failure_ttl=600)
# limit chase: batches that asked for it re-price their unfilled LIMIT children toward the LTP
cron.register(orders.chase_limits, queue_name=QUEUE_ORDERS, interval=2, result_ttl=10, failure_ttl=600)
# strategies: bars an ACTIVE deployment has not evaluated (a worker died mid-evaluation, a lost
# announcement) get their evaluation again; a bar older than the send deadline makes no batch
cron.register(automation.sweep, queue_name=QUEUE_STRATEGIES, interval=3, result_ttl=10, failure_ttl=600)
# each deployment's own intraday square-off time (once a day)
cron.register(automation.squareoff, queue_name=QUEUE_STRATEGIES, interval=20, result_ttl=60, failure_ttl=3600)
# the desk's day: the intraday square-off at its IST time, then the day-end roll (catches up at start)
cron.register(risk.day_tick, queue_name=QUEUE_DEFAULT, interval=20, result_ttl=60, failure_ttl=3600)
# webhook alerts a dead worker left RECEIVED: queued again while fresh, expired (never sent late) after
cron.register(hooks.sweep, queue_name=QUEUE_STRATEGIES, interval=5, result_ttl=10, failure_ttl=600)
# the replies kept for Idempotency-Key, after a day (webapp/api/core.py REPLAY_FOR)
cron.register(api.prune, queue_name=QUEUE_DEFAULT, interval=3600, result_ttl=300, failure_ttl=3600)
# notifications (webapp/notify/): new fills, rejections, stops, alerts, kills, expiring sessions → one row
# per (fact, user), by cursor, exactly once; their Telegram / email sends; Telegram link codes
cron.register(notify.tick, queue_name=QUEUE_DEFAULT, interval=2, result_ttl=10, failure_ttl=600)
