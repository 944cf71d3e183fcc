"""Which messaging connector sends a message, and its plugin's :class:`core.plugin.Sender`."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.connectors import context_for
from core.models import Connector
from core.plugin import Sender
from core.runtime import Runtime


class NoSender(Exception):
    """No enabled messaging connector can send this message."""


def can_send(rt: Runtime, connector: Connector) -> bool:
    ctype = rt.registry.connector_types.get(connector.type)
    return ctype is not None and connector.kind == "messaging" and "send" in ctype.capabilities


async def choose_connector(rt: Runtime, session: AsyncSession, preferred_id: int | None) -> Connector:
    """The row's own connector when it can still send, else the oldest enabled messaging connector.

    One sending connector per installation is the common case; with several, a message names its
    connector (``connector_id``) or goes through the first one configured.
    """
    if preferred_id is not None:
        preferred = await session.get(Connector, preferred_id)
        if preferred is not None and preferred.enabled and can_send(rt, preferred):
            return preferred
    stmt = select(Connector).where(col(Connector.kind) == "messaging", col(Connector.enabled).is_(True))
    for connector in (await session.exec(stmt.order_by(col(Connector.id)))).all():
        if can_send(rt, connector):
            return connector
    raise NoSender("no enabled messaging connector can send texts (add one, e.g. `clasp connector add twilio ...`)")


@dataclass
class Senders:
    """Sender objects built once per flush (settings decrypted once, not per message)."""

    rt: Runtime
    built: dict[int, Sender] = field(default_factory=dict)

    def get(self, connector: Connector) -> Sender:
        assert connector.id is not None
        if connector.id not in self.built:
            ctype = self.rt.registry.connector_type(connector.type)
            sender = ctype.sender(context_for(self.rt, connector))
            if sender is None:
                raise NoSender(f"connector {connector.name!r} ({connector.type}) has no sender")
            self.built[connector.id] = sender
        return self.built[connector.id]


def status_callback_url(rt: Runtime, connector: Connector, outreach_id: int) -> str:
    """The per-message status webhook. The outreach id in it lets a report find its row even when a
    crash kept us from recording the provider's message id (the provider signs the whole URL)."""
    return f"{rt.settings.base_url}/webhooks/{connector.type}/{connector.id}/status?outreach={outreach_id}"
