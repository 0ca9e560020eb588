"""The rq processes' console handler lets `rq cron`'s stop through a log line being written."""

import io
import logging

import pytest
from rq.exceptions import StopRequested

from jobs.context import ConsoleHandler


class StoppedMidWrite(io.StringIO):
    """A stream whose write is interrupted by rq cron's signal handler (it raises StopRequested)."""

    def write(self, text: str) -> int:
        raise StopRequested()


def test_a_stop_raised_while_a_line_is_written_reaches_the_process_not_a_logging_traceback(capsys):
    logger = logging.getLogger("tests.job_logging")
    handler = ConsoleHandler(StoppedMidWrite())
    logger.addHandler(handler)
    try:
        with pytest.raises(StopRequested):
            logger.warning("a line")
    finally:
        logger.removeHandler(handler)
    assert "Logging error" not in capsys.readouterr().err


def test_other_write_errors_are_still_reported_by_logging(capsys):
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError("disk full")

    logger = logging.getLogger("tests.job_logging.other")
    handler = ConsoleHandler(Broken())
    logger.addHandler(handler)
    try:
        logger.warning("a line")  # logging's own handleError: reported, not raised
    finally:
        logger.removeHandler(handler)
    assert "Logging error" in capsys.readouterr().err


# ---------------------------------------------------------------- what an operator tails (docs/operations.md)

import re  # noqa: E402
import subprocess  # noqa: E402
from decimal import Decimal  # noqa: E402

from rq import Queue, SimpleWorker  # noqa: E402

from jobs.context import use_app  # noqa: E402
from jobs.worker import RQ_CHATTER, RqChatterFilter  # noqa: E402
from webapp.brokers.paper import ensure_account  # noqa: E402
from webapp.extensions import get_rq_redis  # noqa: E402
from webapp.trading.batch_requests import queue_send  # noqa: E402

SECRETS = ("access_token", "api_secret", "password", "Authorization")


def _paper_batch(app, factory, names=("Asha Mehta", "Ravi Kumar"), symbol="INFY"):
    trader = factory.user()
    clients = [factory.client(name, broker="paper") for name in names]
    with app.app_context():
        for client in clients:
            ensure_account(client.client_code, Decimal("1000000"))
    instrument = factory.instrument(symbol, 1594 + len(symbol), price="1548.20")
    batch = factory.batch(trader, clients, instrument, quantity=2)
    with app.app_context():
        assert queue_send(batch.id) is None
    return batch, clients


def test_a_batch_logs_one_info_line_and_one_per_child_outcome(app, factory, caplog):
    batch, clients = _paper_batch(app, factory)
    chatter = logging.getLogger("rq.worker")
    quiet = RqChatterFilter()
    chatter.addFilter(quiet)  # as jobs/settings.py installs it in the rq processes
    caplog.set_level(logging.INFO)
    try:
        use_app(app)
        with app.app_context():
            connection = get_rq_redis()
            SimpleWorker([Queue("orders", connection=connection)], connection=connection).work(burst=True)
    finally:
        chatter.removeFilter(quiet)
    info = [r for r in caplog.records if r.levelno >= logging.INFO]
    lines = [r.getMessage() for r in info]
    batches = [line for line in lines if line.startswith("op=batch ")]
    assert batches == [
        f"op=batch job=send-batch-{batch.id} batch={batch.id} kind=ticket clients=2 instrument=NSE:INFY side=BUY"
    ]
    orders = [line for line in lines if line.startswith("op=order ")]
    assert len(orders) == 2
    for line, client in zip(orders, clients):
        fields = dict(re.findall(r"(\w+)=('[^']*'|\S+)", line))
        assert fields["job"] == f"send-batch-{batch.id}" and fields["batch"] == str(batch.id)
        assert fields["client_code"] == client.client_code and fields["broker"] == "paper"
        assert fields["state"] in ("PLACED", "OPEN", "COMPLETE") and fields["broker_order_id"] != "-"
        assert fields["latency_ms"].isdigit()
    text = "\n".join(lines)
    assert "Asha Mehta" not in text and "Ravi Kumar" not in text  # clients by code, never by name
    assert not any(secret in text for secret in SECRETS)
    assert not [r for r in info if r.name.startswith("webapp.trading")], "the engine's per-state lines are DEBUG"
    assert not [r for r in info if r.name == "rq.worker" and r.msg in RQ_CHATTER], "RQ's per-job lines are DEBUG"


def test_rq_chatter_is_shown_at_debug(caplog):
    logger = logging.getLogger("rq.worker")
    quiet = RqChatterFilter()
    logger.addFilter(quiet)
    try:
        caplog.set_level(logging.DEBUG, logger="rq.worker")
        logger.info("Worker %s: job %s result is kept for %s seconds", "w1", "j1", 300)
        logger.info("Worker %s: started with PID %d, version %s", "w1", 1, "2")
        assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
            ("DEBUG", "Worker w1: job j1 result is kept for 300 seconds"),
            ("INFO", "Worker w1: started with PID 1, version 2"),
        ]
    finally:
        logger.removeFilter(quiet)


def test_rq_cron_lists_each_enqueued_job_at_debug_only(caplog):
    logger = logging.getLogger("rq.cron")
    quiet = RqChatterFilter()
    logger.addFilter(quiet)
    try:
        caplog.set_level(logging.INFO, logger="rq.cron")
        logger.info("Enqueued job reprice to queue sync")
        logger.info("CronScheduler %s: starting...", "c1")
        assert [r.getMessage() for r in caplog.records] == ["CronScheduler c1: starting..."]
        caplog.clear()
        caplog.set_level(logging.DEBUG, logger="rq.cron")
        logger.info("Enqueued job reprice to queue sync")
        assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
            ("DEBUG", "Enqueued job reprice to queue sync")
        ]
    finally:
        logger.removeFilter(quiet)


def test_a_real_orders_worker_writes_what_an_operator_tails(app, factory, tmp_path):
    """The Procfile's orders worker (jobs/settings.py's logging), in a process of its own, --burst."""
    import os
    import sys

    from webapp.entrypoint import worker_command

    batch, clients = _paper_batch(app, factory, names=("Neha Rao",))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FANOUT_", "DATABASE_URL", "REDIS_URL", "LOG_"))}
    env.update(
        DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
        REDIS_URL=app.config["REDIS_URL"],
        SECRET_KEY=app.config["SECRET_KEY"],
        FANOUT_ENCRYPTION_KEYS=app.config["FANOUT_ENCRYPTION_KEYS"][0],
        FANOUT_TESTING="1",
        FANOUT_INSTANCE=str(tmp_path),
        PAPER_ALWAYS_OPEN="1",
        PYTHONUNBUFFERED="1",
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    command = [*worker_command("orders", f"logs-{os.getpid()}"), "--burst"]
    assert command[0] == sys.executable
    run = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=120)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    info = [line for line in output.splitlines() if " level=INFO " in line]
    assert len([line for line in info if " op=batch " in line]) == 1, output
    (order,) = [line for line in info if " op=order " in line]
    assert f"job_id=send-batch-{batch.id} " in order and f"client_code={clients[0].client_code} " in order
    assert "broker=paper " in order and "Neha Rao" not in output
    assert not [
        line for line in info if "Job OK" in line or "result is kept" in line or "Successfully completed" in line
    ]
    assert "Worker logs-" in output  # RQ's own start-up line is still there

    batch, _ = _paper_batch(app, factory, names=("Vik Das",), symbol="TCS")
    env["LOG_LEVEL"] = "debug"
    run = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=120)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert re.search(r"level=DEBUG logger=rq.worker .*Job OK", output), output  # shown at debug
    assert re.search(r"level=DEBUG logger=webapp.trading.children .*op=child ", output) or "op=claim" in output
