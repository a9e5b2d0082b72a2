import kiqpy


class Smoke(kiqpy.Worker):
    def perform(self, x):
        return x


def test_push_lands_in_redis(config, r):
    jid = Smoke.perform_async(1)
    assert r.smembers("queues") == {b"default"}
    assert r.llen("queue:default") == 1
    assert kiqpy.payload.decode(r.lindex("queue:default", 0))["jid"] == jid
