"""Adopting records that already exist in Salesforce instead of creating duplicates.

A client Clasp has never pushed (no Salesforce id known for it) may already be in the org: entered
by hand, imported, or created by another integration. Before its first upsert the candidates are
looked up among records *without* our external ID (a record carrying one belongs to a client
already), on the email and/or phone as the ``match_on`` setting says; Leads only when not converted.

- exactly one candidate, claimed by no other client of the batch → adopted: our external ID is set
  on it, and the upsert then updates it;
- several candidates, or one candidate two clients point at → ambiguous: the client goes to the
  error queue with the candidates' ids for a person to resolve (never a guess);
- none → the upsert creates the record.

SOQL equality on ``Phone`` compares the text as typed (``(415) 555-1212``), so the IN lists carry the
usual spellings of each number and the answers are compared after normalising both sides to E.164.

Cost: one ``COUNT()`` query, then whichever is cheaper: every unlinked record (2,000 a page), or IN
queries for the new clients (50 a query). A fresh org with nothing unlinked costs one call.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import phonenumbers

from .client import SalesforceClient

CHUNK = 50
PAGE = 2000
PHONE_FIELDS = ("Phone", "MobilePhone")


@dataclass
class Match:
    adopt: str | None = None  # Salesforce id to adopt
    candidates: list[str] = field(default_factory=list)  # set when ambiguous
    reason: str = ""


def soql_literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def e164(raw: str | None, region: str) -> str | None:
    if not raw:
        return None
    try:
        number = phonenumbers.parse(raw, None if raw.strip().startswith("+") else region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def spellings(number: str) -> list[str]:
    """The ways a person (or an import) commonly types this E.164 number into Salesforce."""
    out = [number]
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return out
    national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    international = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    digits = str(parsed.national_number)
    for value in (national, international, digits, f"{parsed.country_code}{digits}"):
        if value not in out:
            out.append(value)
    return out


class Matcher:
    def __init__(self, client: SalesforceClient, *, sobject: str, ext_field: str, match_on: str, region: str) -> None:
        self.client = client
        self.sobject = sobject
        self.ext_field = ext_field
        self.emails = match_on in ("email", "both")
        self.phones = match_on in ("phone", "both")
        self.region = region

    def _fields(self) -> list[str]:
        fields = ["Id"]
        if self.emails:
            fields.append("Email")
        if self.phones:
            fields += list(PHONE_FIELDS)
        return fields

    def _unlinked(self) -> str:
        cond = f"{self.ext_field} = null"
        if self.sobject == "Lead":
            cond += " AND IsConverted = false"
        return cond

    async def query(self, soql: str) -> tuple[int, list[dict[str, Any]]]:
        body = await self.client.json("GET", "query", params={"q": soql})
        records = list(body.get("records", []))
        while not body.get("done", True) and body.get("nextRecordsUrl"):
            body = await self.client.json("GET", body["nextRecordsUrl"])
            records += body.get("records", [])
        return int(body.get("totalSize", len(records))), records

    async def match(self, clients: list[dict[str, Any]]) -> dict[int, Match]:
        """Candidates for clients never pushed; keys are client ids (only those with a decision)."""
        if not (self.emails or self.phones) or not clients:
            return {}
        wanted = [c for c in clients if (self.emails and c.get("emails")) or (self.phones and c.get("phones"))]
        if not wanted:
            return {}
        count, _ = await self.query(f"SELECT COUNT() FROM {self.sobject} WHERE {self._unlinked()}")
        if count == 0:
            return {}
        select = f"SELECT {', '.join(self._fields())} FROM {self.sobject}"
        records: list[dict[str, Any]] = []
        if math.ceil(count / PAGE) <= math.ceil(len(wanted) / CHUNK):
            records = (await self.query(f"{select} WHERE {self._unlinked()}"))[1]
        else:
            for start in range(0, len(wanted), CHUNK):
                ors = self._conditions(wanted[start : start + CHUNK])
                if ors:
                    records += (await self.query(f"{select} WHERE {self._unlinked()} AND ({' OR '.join(ors)})"))[1]
        return self._decide(wanted, records)

    def _conditions(self, clients: list[dict[str, Any]]) -> list[str]:
        ors = []
        if self.emails:
            emails = sorted({e for c in clients for e in c.get("emails") or []})
            if emails:
                ors.append(f"Email IN ({', '.join(soql_literal(e) for e in emails)})")
        if self.phones:
            phones = sorted({s for c in clients for p in c.get("phones") or [] for s in spellings(p)})
            if phones:
                literals = ", ".join(soql_literal(p) for p in phones)
                ors += [f"{f} IN ({literals})" for f in PHONE_FIELDS]
        return ors

    def _decide(self, clients: list[dict[str, Any]], records: list[dict[str, Any]]) -> dict[int, Match]:
        by_email: dict[str, set[str]] = defaultdict(set)
        by_phone: dict[str, set[str]] = defaultdict(set)
        for rec in records:
            if self.emails and rec.get("Email"):
                by_email[str(rec["Email"]).strip().lower()].add(rec["Id"])
            if self.phones:
                for name in PHONE_FIELDS:
                    number = e164(rec.get(name), self.region)
                    if number:
                        by_phone[number].add(rec["Id"])
        found: dict[int, set[str]] = {}
        for c in clients:
            ids: set[str] = set()
            if self.emails:
                for email in c.get("emails") or []:
                    ids |= by_email.get(email.lower(), set())
            if self.phones:
                for phone in c.get("phones") or []:
                    ids |= by_phone.get(phone, set())
            if ids:
                found[int(c["id"])] = ids
        claims: dict[str, list[int]] = defaultdict(list)
        for cid, ids in found.items():
            for sf_id in ids:
                claims[sf_id].append(cid)
        out: dict[int, Match] = {}
        for cid, ids in found.items():
            if len(ids) > 1:
                out[cid] = Match(candidates=sorted(ids), reason=(
                    f"{len(ids)} existing {self.sobject} records match this client's email/phone; "
                    "link the right one (set its external ID) or merge them in Salesforce, then replay"))
                continue
            sf_id = next(iter(ids))
            others = [o for o in claims[sf_id] if o != cid]
            if others:
                out[cid] = Match(candidates=[sf_id], reason=(
                    f"existing {self.sobject} {sf_id} matches this client and client(s) {others}; "
                    "merge the clients in Clasp or link the record by hand, then replay"))
                continue
            out[cid] = Match(adopt=sf_id)
        return out
