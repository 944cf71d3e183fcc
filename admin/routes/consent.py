"""Consent on a client's page: the ledger, and recording an in-store opt-in with its exact wording."""

from __future__ import annotations

route_handlers: list[object] = []
