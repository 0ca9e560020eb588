"""The embedded Redis `make run` starts: it saves, and what it held is there after a restart."""

import redis

from webapp.embedded_redis import EmbeddedRedis


def test_the_persistent_redis_is_configured_to_save(tmp_path):
    with EmbeddedRedis(data_dir=tmp_path, persist=True) as embedded:
        client = redis.Redis.from_url(embedded.url, decode_responses=True)
        assert client.config_get("save") == {"save": "60 1"}
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
        client.close()


def test_the_test_redis_does_not_save(tmp_path):
    with EmbeddedRedis(data_dir=tmp_path) as embedded:
        client = redis.Redis.from_url(embedded.url, decode_responses=True)
        assert client.config_get("save") == {"save": ""} and client.config_get("appendonly") == {"appendonly": "no"}
        client.close()


def test_a_key_survives_a_restart_on_the_same_data_dir(tmp_path):
    with EmbeddedRedis(data_dir=tmp_path, persist=True) as embedded:
        client = redis.Redis.from_url(embedded.url, decode_responses=True)
        client.set("fanout:test:kept", "yes")
        client.rpush("rq:queue:orders", "job-1")  # a queued job, as RQ keeps it
        client.close()
    with EmbeddedRedis(data_dir=tmp_path, persist=True) as embedded:  # a new process, a new port
        client = redis.Redis.from_url(embedded.url, decode_responses=True)
        assert client.get("fanout:test:kept") == "yes"
        assert client.lrange("rq:queue:orders", 0, -1) == ["job-1"]
        client.close()
