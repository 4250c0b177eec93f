"""The message puller's configuration, read once from the environment at start.

Times are seconds. Defaults follow DESIGN.md and turn-api.md: 60 requests per 60 s, pages of
1000, `until` two minutes behind now, windows re-read five minutes back, an incremental pull
every 30 s, a recovery sweep of the last 3 days daily and an audit sweep of the last 30 days
weekly. Without a checkpoint the first pull starts at PULL_START_FROM (ISO-8601 with a zone),
else PULL_START_LOOKBACK seconds (default 30 days) before the first start. What both pullers
configure alike (TURNIO_*, LEASE_TTL, PUBLISH_*, the PULL_ window variables) is read by
shared/puller_settings.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.puller_settings import DAY, PullerSettingsBase
from shared.settings import Env

STREAM = "messages"
SERVICE = "message_puller"


@dataclass(frozen=True, repr=False)
class PullerSettings(PullerSettingsBase):
    port: int = 8002
    # Sweeps: (every, span).
    recovery_every: float = DAY
    recovery_span: float = 3 * DAY
    audit_every: float = 7 * DAY
    audit_span: float = 30 * DAY

    @classmethod
    def from_env(cls, env: Env) -> PullerSettings:
        return cls(
            **cls.shared_from_env(env, "PULL"),
            recovery_every=env.seconds("RECOVERY_SWEEP_EVERY", DAY, minimum=1.0),
            recovery_span=env.seconds("RECOVERY_SWEEP_SPAN", 3 * DAY, minimum=1.0),
            audit_every=env.seconds("AUDIT_SWEEP_EVERY", 7 * DAY, minimum=1.0),
            audit_span=env.seconds("AUDIT_SWEEP_SPAN", 30 * DAY, minimum=1.0),
        )
