"""Settling deliveries: which tags may be acked at once, and never a tag of a dead channel.

Acks name delivery tags of the channel that delivered them. After a broker reconnect those
tags mean nothing (the broker redelivers the messages on the new channel), so deliveries of a
closed channel are skipped, never acked on the new one. A batch is acked with one
multiple-ack where that cannot reach past a tag still unsettled by another batch.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import aio_pika.abc
import aiormq.abc

from services.db_writer import metrics
from shared import broker

log = logging.getLogger("db_writer")


@dataclass(frozen=True, slots=True)
class Delivery:
    message: aio_pika.abc.AbstractIncomingMessage
    channel: aiormq.abc.AbstractChannel  # the channel whose delivery tag this is


class Acks:
    def __init__(self) -> None:
        self.acked = 0  # deliveries settled by ack since start (dead letters included)
        # Per delivering channel: tags received and not yet settled (for safe multiple acks).
        self._unsettled: dict[int, tuple[aiormq.abc.AbstractChannel, set[int]]] = {}

    def received(self, message: aio_pika.abc.AbstractIncomingMessage) -> Delivery:
        channel = message.channel
        entry = self._unsettled.get(id(channel))
        if entry is None or entry[0] is not channel:
            entry = self._unsettled[id(channel)] = (channel, set())
        assert message.delivery_tag is not None
        entry[1].add(message.delivery_tag)
        return Delivery(message, channel)

    async def settle_one(self, delivery: Delivery, *, requeue: bool | None) -> bool:
        """Ack (requeue=None) or reject one delivery; False when its channel is gone."""
        tags = self._tags_of(delivery.channel)
        try:
            if requeue is None:
                await delivery.message.ack()
                self.acked += 1
            else:
                await delivery.message.nack(requeue=requeue)
                metrics.DELIVERIES.labels("requeued").inc()
        except broker.BROKER_ERRORS as exc:
            log.warning("could not settle a delivery", extra={"error": repr(exc)})
            return False
        finally:
            if tags is not None and delivery.message.delivery_tag is not None:
                tags.discard(delivery.message.delivery_tag)
        return True

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        by_channel: dict[int, list[Delivery]] = {}
        for delivery in deliveries:
            by_channel.setdefault(id(delivery.channel), []).append(delivery)
        for group in by_channel.values():
            await self._ack_channel(group)

    async def _ack_channel(self, group: list[Delivery]) -> None:
        channel = group[0].channel
        tags = self._tags_of(channel)
        if tags is None or channel.is_closed:
            return
        group.sort(key=lambda d: d.message.delivery_tag or 0)
        mine = {d.message.delivery_tag for d in group}
        # One multiple-ack covers every tag up to it, so it may only reach up to the first
        # unsettled tag that is not ours (a delivery of the next batch, a requeue pending).
        first_other = min((t for t in tags if t not in mine), default=math.inf)
        covered = [d for d in group if (d.message.delivery_tag or 0) < first_other]
        rest = group[len(covered) :]
        try:
            if covered:
                await covered[-1].message.ack(multiple=len(covered) > 1)
            for delivery in rest:
                await delivery.message.ack()
        except broker.BROKER_ERRORS as exc:
            # The channel died under us: the broker redelivers what it did not get acks for.
            log.warning("acks lost with the channel", extra={"error": repr(exc)})
            return
        finally:
            tags.difference_update(mine)
        self.acked += len(group)
        metrics.DELIVERIES.labels("acked").inc(len(group))

    def _tags_of(self, channel: aiormq.abc.AbstractChannel) -> set[int] | None:
        entry = self._unsettled.get(id(channel))
        return entry[1] if entry is not None and entry[0] is channel else None

    def forget_closed_channels(self) -> None:
        for key, (channel, _) in list(self._unsettled.items()):
            if channel.is_closed:
                del self._unsettled[key]
