import logging

import orjson

from shared.logs import JsonFormatter, Throttle


def _record(msg, *args, **extra):
    record = logging.LogRecord("t", logging.INFO, __file__, 1, msg, args, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_lines_are_json_with_extras():
    line = orjson.loads(JsonFormatter().format(_record("hello %s", "world", queue="q1")))
    assert line["msg"] == "hello world"
    assert line["queue"] == "q1"
    assert line["level"] == "INFO"


def test_secrets_are_scrubbed_wherever_they_appear():
    formatter = JsonFormatter(secrets=["s3cr3t-token", "s3cr3t-token-longer"])
    text = formatter.format(_record("token s3cr3t-token-longer", url="x://u:s3cr3t-token@h"))
    assert "s3cr3t" not in text
    assert text.count("***") == 2


def test_secrets_that_json_escapes_are_scrubbed_too():
    # The line is scrubbed after encoding, where `"` and `\` appear escaped.
    secret = 'pa"ss\\w@rd'
    text = JsonFormatter(secrets=[secret]).format(_record(f"login failed for {secret}"))
    assert orjson.loads(text)["msg"] == "login failed for ***"
    assert orjson.dumps(secret)[1:-1].decode() not in text


def test_throttle_lets_one_line_per_interval_and_counts_the_rest():
    now = [100.0]
    throttle = Throttle(interval=10.0, clock=lambda: now[0])
    assert throttle.allow("401") == 0
    assert throttle.allow("401") is None
    assert throttle.allow("503") == 0  # keys are independent
    now[0] += 5
    assert throttle.allow("401") is None
    now[0] += 5
    assert throttle.allow("401") == 2  # two held back since the last line
    assert throttle.allow("401") is None
