"""Writeback: client edits made in Clasp → ``PUT Customer/{id}.json``.

Whether a PUT of ``Phones``/``Emails`` replaces the whole list or merges by ``useType`` is not
documented, so the writer reads the customer first and sends the complete set, one entry per
``useType``, with an empty entry for a slot being cleared: the result is the same under either
behaviour. Relations without endpoints of their own (Contact, Note, CustomFieldValues) are
written nested in the Customer body, as the docs describe.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.plugin import ClientWrite, ConnectorContext, Writer, WriteResult

from .client import LightspeedApi, NotFound
from .quirks import nested, ref, relation, resource_rows, text, timestamp

EMAIL_SLOTS = ("Primary", "Secondary")
PHONE_SLOTS = ("Mobile", "Home", "Work")


def _digits(value: str) -> str:
    digits = re.sub(r"\D", "", value)
    return digits[1:] if len(digits) == 11 and digits.startswith("1") else digits


def _date(value: Any) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def email_entries(wanted: list[str], current: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Primary and Secondary: the first two addresses, in Clasp's order (R-Series holds two)."""
    entries = [{"address": address, "useType": slot} for address, slot in zip(wanted, EMAIL_SLOTS, strict=False)]
    used = {e["useType"] for e in entries}
    entries += [{"address": "", "useType": text(c, "useType")} for c in current
                if text(c, "useType") and text(c, "useType") not in used]
    return entries


def phone_entries(wanted: list[str], current: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Keep each number that stays in its useType slot; new numbers take free slots, Mobile first."""
    slot_of = {_digits(text(c, "number")): text(c, "useType") for c in current if text(c, "number")}
    taken: dict[str, str] = {}
    leftovers = []
    for number in wanted:
        slot = slot_of.get(_digits(number))
        if slot and slot not in taken:
            taken[slot] = number
        else:
            leftovers.append(number)
    free = [s for s in PHONE_SLOTS if s not in taken]
    # The primary (first) number should land in Mobile when that slot is free: it is the one texted.
    for number in leftovers:
        if not free:
            break
        taken[free.pop(0)] = number
    entries = [{"number": number, "useType": slot} for slot, number in taken.items()]
    stale = {text(c, "useType") for c in current if text(c, "useType")} - set(taken)
    entries += [{"number": "", "useType": slot} for slot in sorted(stale)]
    return entries


class CustomerWriter(Writer):
    def __init__(self, ctx: ConnectorContext) -> None:
        self.ctx = ctx
        self._timezone: str | None = None
        self._anniversary_field_id: str | None = None

    async def write(self, change: ClientWrite) -> WriteResult:
        if not change.external_id:
            # Clasp does not create POS customers on its own: a client known only from another source
            # is not pushed into Lightspeed by an edit.
            return WriteResult(ok=True, message="not linked to a Lightspeed customer; nothing written")
        try:
            async with LightspeedApi(self.ctx) as api:
                await api.ensure_account()
                return await self._write(api, change)
        except NotFound:
            return WriteResult(ok=False, external_id=change.external_id,
                               message=f"Lightspeed customer {change.external_id} no longer exists")

    async def _write(self, api: LightspeedApi, change: ClientWrite) -> WriteResult:
        url = api.account_url(f"Customer/{change.external_id}.json")
        relations = json.dumps(["Contact", "Note", "CustomFieldValues"])
        current = next(iter(resource_rows(await api.get_json(url, {"load_relations": relations}), "Customer")), None)
        if current is None:
            raise NotFound(f"Customer {change.external_id}")
        changes = change.changes
        body: dict[str, Any] = {}
        notes: list[str] = []
        if "first_name" in changes:
            body["firstName"] = changes["first_name"] or ""
        if "last_name" in changes:
            body["lastName"] = changes["last_name"] or ""
        if "birthday" in changes:
            body["dob"] = await self._date_value(api, _date(changes["birthday"]))
        contact: dict[str, Any] = {}
        stored_contact = relation(current, "Contact")
        if "emails" in changes:
            wanted = [str(e) for e in changes["emails"] or []]
            stored = nested(stored_contact, "Emails", "ContactEmail")
            contact["Emails"] = {"ContactEmail": email_entries(wanted, stored)}
            if wanted:
                contact["noEmail"] = "false"
            if len(wanted) > len(EMAIL_SLOTS):
                notes.append(f"Lightspeed keeps two emails; {len(wanted) - len(EMAIL_SLOTS)} not written")
        if "phones" in changes:
            wanted = [str(p) for p in changes["phones"] or []]
            stored = nested(stored_contact, "Phones", "ContactPhone")
            contact["Phones"] = {"ContactPhone": phone_entries(wanted, stored)}
            if wanted:
                contact["noPhone"] = "false"
            if len(wanted) > len(PHONE_SLOTS):
                notes.append(f"Lightspeed keeps three phones here; {len(wanted) - len(PHONE_SLOTS)} not written")
        if "address" in changes:
            address = changes["address"] or {}
            region = str(address.get("region") or "")
            contact["Addresses"] = {"ContactAddress": {
                "address1": address.get("line1") or "", "address2": address.get("line2") or "",
                "city": address.get("city") or "", "zip": address.get("postal_code") or "",
                "state": region, "stateCode": region if len(region) == 2 else "",
                "countryCode": address.get("country") or "",
            }}
        if contact:
            body["Contact"] = contact
        if "note" in changes:
            body["Note"] = {"note": changes["note"] or ""}
        if "anniversary" in changes:
            field_id = await self._anniversary_id(api)
            if field_id is None:
                notes.append(f"no customer custom field named {self.ctx.settings.anniversary_field!r}; "
                             "anniversary not written")
            else:
                value = _date(changes["anniversary"])
                entry: dict[str, Any] = {"customFieldID": field_id}
                if value is None:
                    entry["deleted"] = True
                else:
                    entry["value"] = value.isoformat()
                body["CustomFieldValues"] = {"CustomFieldValue": [entry]}
        if not body:
            return WriteResult(ok=True, external_id=change.external_id,
                               message="; ".join(notes) or "nothing Lightspeed stores changed")
        response = await api.write_json("PUT", url, body)
        written = next(iter(resource_rows(response, "Customer")), {})
        return WriteResult(ok=True, external_id=change.external_id, message="; ".join(notes),
                           remote_updated_at=timestamp(written, "timeStamp"))

    async def _date_value(self, api: LightspeedApi, value: date | None) -> str:
        """A date as R-Series stores date fields: local midnight of the account's (first) shop."""
        if value is None:
            return ""
        if self._timezone is None:
            shops = resource_rows(await api.get_json(api.account_url("Shop.json"), {"limit": 1, "sort": "shopID"}),
                                  "Shop")
            self._timezone = text(shops[0], "timeZone") if shops else "UTC"
        try:
            zone = ZoneInfo(self._timezone or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            zone = ZoneInfo("UTC")
        return datetime.combine(value, time(0), tzinfo=zone).isoformat()

    async def _anniversary_id(self, api: LightspeedApi) -> str | None:
        if self._anniversary_field_id is None:
            wanted = str(self.ctx.settings.anniversary_field).casefold()
            body = await api.get_json(api.account_url("Customer/CustomField.json"))
            for definition in resource_rows(body, "CustomField"):
                if text(definition, "name").casefold() == wanted:
                    self._anniversary_field_id = ref(definition, "customFieldID") or ""
                    break
            else:
                self._anniversary_field_id = ""
        return self._anniversary_field_id or None

