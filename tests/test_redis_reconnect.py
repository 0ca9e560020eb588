"""The two Redis connection policies (webapp/redisconn.py) and the worker's re-registration, in
process: the RQ processes' client waits for Redis to come back; the web's refuses at once after a
failure; a worker that Redis forgot (restarted empty) is in `Worker.all()` again after a heartbeat."""

from __future__ import annotations

import threading

import pytest
import redis as redis_lib
from rq import Queue, SimpleWorker, Worker

from jobs.worker import SurvivesRedisOutages
from webapp.embedded_redis import EmbeddedRedis
from webapp.redisconn import PatientRedis, fail_fast_client, reset_breaker


@pytest.fixture
def own_redis():
    server = EmbeddedRedis().start()
    yield server
    server.stop()
    reset_breaker()


class ForgetfulSafeWorker(SurvivesRedisOutages, SimpleWorker):
    pass


def test_a_worker_redis_forgot_registers_again_at_its_heartbeat(own_redis):
    connection = PatientRedis.from_url(own_redis.url)
    worker = ForgetfulSafeWorker([Queue("orders", connection=connection)], connection=connection)
    worker.register_birth()
    assert [w.name for w in Worker.all(connection=connection)] == [worker.name]
    connection.flushdb()  # what a Redis restarted empty looks like
    assert Worker.all(connection=connection) == []
    worker.heartbeat()
    assert [w.name for w in Worker.all(connection=connection)] == [worker.name]
    assert [w.name for w in Worker.all(queue=Queue("orders", connection=connection))] == [worker.name]


def test_the_rq_client_waits_for_redis_to_come_back(own_redis):
    port, data_dir = own_redis.port, own_redis.data_dir
    client = PatientRedis.from_url(own_redis.url)
    client.set("before", "1")
    own_redis.process.kill()
    own_redis.process.wait()
    outcome = {}

    def write() -> None:
        try:
            outcome["result"] = client.set("after", "2")
        except redis_lib.RedisError as exc:  # the failure this client exists to prevent
            outcome["error"] = exc

    writer = threading.Thread(target=write)
    writer.start()
    writer.join(1.0)
    assert writer.is_alive() and not outcome  # Redis is down: the command waits, it does not raise
    again = EmbeddedRedis(data_dir=data_dir / "again", port=port).start()
    try:
        writer.join(60)
        assert outcome == {"result": True}
        assert again.process.poll() is None and redis_lib.Redis(port=port).get("after") == b"2"
    finally:
        again.stop()


def test_the_web_client_refuses_at_once_after_a_failure(own_redis):
    client = fail_fast_client(own_redis.url)
    assert client.ping()
    own_redis.process.kill()
    own_redis.process.wait()
    with pytest.raises(redis_lib.ConnectionError) as first:
        client.ping()
    assert "recent attempt failed" not in str(first.value)  # this one tried
    with pytest.raises(redis_lib.ConnectionError, match="recent attempt failed"):
        fail_fast_client(own_redis.url).get("x")  # another client of the process: no new attempt
