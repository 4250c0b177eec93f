"""`python -m services.webhook_gateway` as a pod runs it: refuses bad config, stops on SIGTERM."""

import json
import os
import subprocess
import sys

import httpx
import pytest

from services.webhook_gateway.app import WEBHOOK_PATH
from services.webhook_gateway.signature import sign
from tests.conftest import BUSINESS_NUMBER, EXAMPLES
from tests.processes import ROOT, ServiceProcess
from tests.webhook_gateway.conftest import drain

pytestmark = pytest.mark.slow

SECRETS = ("rotated-out-secret-1f2e", "current-secret-9a8b")


def gateway_env(amqp_url: str) -> dict[str, str]:
    return {
        "AMQP_URL": amqp_url,
        "BUSINESS_NUMBER_ID": BUSINESS_NUMBER,
        "TURNIO_WEBHOOK_SECRET": ",".join(SECRETS),
        "LOG_LEVEL": "DEBUG",  # the most talkative level must still not leak a secret
        "HOST": "127.0.0.1",
    }


def run_gateway(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("TURNIO_WEBHOOK_SECRET", "PORT")}
    return subprocess.run(
        [sys.executable, "-m", "services.webhook_gateway"],
        env={**clean, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_refuses_to_start_without_a_webhook_secret(amqp_url):
    env = gateway_env(amqp_url)
    del env["TURNIO_WEBHOOK_SECRET"]
    result = run_gateway(env)
    assert result.returncode != 0
    assert "TURNIO_WEBHOOK_SECRET" in result.stderr


def test_a_config_error_does_not_echo_the_secrets(amqp_url):
    env = {**gateway_env("amqp://guest:amqp-password-77@127.0.0.1:1/"), "PORT": "not-a-port"}
    result = run_gateway(env)
    assert result.returncode != 0
    assert "PORT" in result.stderr
    output = result.stdout + result.stderr
    for secret in (*SECRETS, "amqp-password-77"):
        assert secret not in output


async def test_serves_then_sigterm_exits_cleanly_without_leaking_secrets(amqp_url):
    body = (EXAMPLES / "webhook_inbound_text.json").read_bytes()
    with ServiceProcess("services.webhook_gateway", gateway_env(amqp_url)) as service:
        await service.ready()
        async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
            good = {
                "X-Turn-Hook-Signature": sign(body, SECRETS[1]),
                "X-Turn-Hook-Subscription": "whatsapp",
            }
            assert (await client.post(WEBHOOK_PATH, content=body, headers=good)).status_code == 200
            # A delivery signed with a secret in the log's face: refused, and logged.
            bad = {"X-Turn-Hook-Signature": SECRETS[0], "X-Turn-Hook-Subscription": "whatsapp"}
            assert (await client.post(WEBHOOK_PATH, content=body, headers=bad)).status_code == 401
            metrics = (await client.get("/metrics")).text
            assert 'turnio_gateway_requests_total{outcome="accepted"} 1.0' in metrics

        assert service.terminate() == 0
        log = service.log_text()

    assert [m.body for m in await drain(amqp_url)] == [body]
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    messages = [line["msg"] for line in lines]
    assert any("signature" in m for m in messages)
    assert "webhook gateway stopped" in messages  # the lifespan closed the publisher
    for secret in SECRETS:
        assert secret not in log
    assert "guest:guest" not in log
