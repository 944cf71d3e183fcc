"""Outreach: the outbox, send rules, consent ledger, conversations and messaging webhooks.

- ``outbox.enqueue(session, ...)``: queue a text in the caller's transaction.
- ``sender.flush(rt)``: claim due rows, apply ``rules``, send through the messaging plugin, reconcile.
- ``consent``: the append-only ledger; ``inbound``: replies and STOP/START/HELP keywords.
- ``conversations``: thread, unread counts, mark read, compose — for the panel and the API.
- ``webhooks.webhook_router`` and ``api.MessagesController``: the HTTP surface.

Modules are imported where used (``from core.outreach.outbox import enqueue``), so importing the
package pulls in no web framework.
"""
