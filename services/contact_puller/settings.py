"""The contact puller's configuration, read once from the environment at start.

Variables that mean the same as the message puller's keep its names (TURNIO_*, LEASE_TTL,
PUBLISH_*, GRACEFUL_SHUTDOWN_TIMEOUT, HOST, PORT, POD_NAME; read by shared/puller_settings.py);
what is the contact puller's own is prefixed CONTACTS_. Times are seconds. Defaults: a run
every hour, 4 windows per run read 2 at a time, cursor creations 1 s apart (Turn has answered
403 to many at once, turn-api.md §3.7), a third of the shared budget while the message puller
has work, pages of 1000, `until` two minutes behind now, runs re-reading five minutes before
the checkpoint, windows of at most 30 days. Without a checkpoint the first run starts at
CONTACTS_START_FROM (ISO-8601 with a zone), else CONTACTS_START_LOOKBACK seconds (default ten
years: contacts are filtered on `updated_at`, and a contact nobody edited for years is still a
contact) before the first start.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from shared.errors import ConfigError
from shared.puller_settings import DAY, PullerSettingsBase
from shared.rate_budget import BudgetPolicy
from shared.settings import Env

STREAM = "contacts"
SERVICE = "contact_puller"


@dataclass(frozen=True, repr=False)
class ContactSettings(PullerSettingsBase):
    port: int = 8003
    interval: float = 3600.0
    max_window: float = 30 * DAY
    start_lookback: float = 3650 * DAY
    # This puller's cap on the shared budget while the message puller has demand.
    budget_share: float = 0.333
    # Runs and their windows.
    windows: int = 4
    concurrency: int = 2
    cursor_stagger: float = 1.0
    forbidden_retries: int = 5
    forbidden_backoff: float = 2.0
    backfill_poll: float = 5.0

    @classmethod
    def from_env(cls, env: Env) -> ContactSettings:
        shared = cls.shared_from_env(env, "CONTACTS")
        share = env.parsed("CONTACTS_BUDGET_SHARE", 0.333, float, "a share like 0.333")
        if not 0.0 < share <= 1.0:
            raise ConfigError("CONTACTS_BUDGET_SHARE", "must be within (0, 1]")
        return cls(
            **shared,
            budget_share=share,
            windows=env.integer("CONTACTS_WINDOWS", 4, minimum=1),
            concurrency=env.integer("CONTACTS_CONCURRENCY", 2, minimum=1),
            cursor_stagger=env.seconds("CONTACTS_CURSOR_STAGGER", 1.0),
            forbidden_retries=env.integer("CONTACTS_FORBIDDEN_RETRIES", 5),
            forbidden_backoff=env.seconds("CONTACTS_FORBIDDEN_BACKOFF", 2.0, minimum=0.01),
            backfill_poll=env.seconds("CONTACTS_BACKFILL_POLL", 5.0, minimum=0.01),
        )

    def budget_policy(self) -> BudgetPolicy:
        return replace(super().budget_policy(), share=self.budget_share)

    def repr_extra(self) -> str:
        return (
            f" share={self.budget_share}, windows={self.windows}, "
            f"concurrency={self.concurrency}, cursor_stagger={self.cursor_stagger}"
        )
