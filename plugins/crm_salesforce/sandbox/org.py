"""The sandbox's in-memory Salesforce org: objects, fields, external IDs, lookups, the Contact email
duplicate rule, and the write semantics of upsert (see ``shared/api/salesforce_twilio.md`` A2-A4)."""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

PREFIX = {
    "Account": "001",
    "Contact": "003",
    "Lead": "00Q",
    "Product2": "01t",
    "Clasp_Receipt__c": "a0R",
    "Clasp_Receipt_Line__c": "a0L",
}
FIELDS: dict[str, set[str]] = {
    "Account": {"Name"},
    "Contact": {"FirstName", "LastName", "Email", "Phone", "MobilePhone", "Birthdate", "MailingStreet", "MailingCity",
                "MailingState", "MailingPostalCode", "MailingCountry", "AccountId", "Title", "Description",
                "Clasp_Client_Id__c"},
    "Lead": {"FirstName", "LastName", "Email", "Phone", "MobilePhone", "Company", "Street", "City", "State",
             "PostalCode", "Country", "Status", "IsConverted", "Clasp_Client_Id__c"},
    "Product2": {"Name", "Description", "Family", "IsActive", "ProductCode", "Clasp_Sku__c"},
    "Clasp_Receipt__c": {"Name", "Clasp_External_Id__c", "Contact__c", "Store__c", "Associate__c", "Occurred_At__c",
                         "Total__c", "Tax__c", "Currency__c", "Status__c"},
    "Clasp_Receipt_Line__c": {"Name", "Clasp_External_Id__c", "Receipt__c", "Product__c", "Quantity__c",
                              "Unit_Price__c", "Line_Total__c"},
}
EXTERNAL_IDS = {
    "Contact": {"Clasp_Client_Id__c"},
    "Lead": {"Clasp_Client_Id__c"},
    "Product2": {"Clasp_Sku__c"},
    "Clasp_Receipt__c": {"Clasp_External_Id__c"},
    "Clasp_Receipt_Line__c": {"Clasp_External_Id__c"},
    "Account": set(),
}
REQUIRED = {"Contact": ("LastName",), "Lead": ("LastName", "Company"), "Product2": ("Name",), "Account": ("Name",)}
LOOKUPS = {
    "Contact": {"AccountId": "Account"},
    "Clasp_Receipt__c": {"Contact__c": "Contact"},
    "Clasp_Receipt_Line__c": {"Receipt__c": "Clasp_Receipt__c", "Product__c": "Product2"},
}
NUMBERS = {"Total__c", "Tax__c", "Quantity__c", "Unit_Price__c", "Line_Total__c"}
BOOLEANS = {"IsActive", "IsConverted"}


class RecordError(Exception):
    """One record refused: ``errors`` in Salesforce's shape (``statusCode`` or ``errorCode`` added by caller)."""

    def __init__(self, code: str, message: str, fields: list[str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields or []
        self.extra = extra

    def as_error(self, key: str = "errorCode") -> dict[str, Any]:
        return {key: self.code, "message": self.message, "fields": self.fields, **self.extra}


class MultipleMatches(Exception):
    def __init__(self, ids: list[str]) -> None:
        super().__init__(f"{len(ids)} records")
        self.ids = ids


def relationship_to_field(name: str) -> str:
    if name.endswith("__r"):
        return name[:-3] + "__c"
    return name + "Id"


INDEXED = {sobject: {*EXTERNAL_IDS.get(sobject, ()), *(("Email",) if sobject == "Contact" else ())}
           for sobject in PREFIX}


@dataclass
class Org:
    """Records per object, with case-insensitive indexes on external IDs and Contact email (so a
    backfill of a few hundred thousand records stays fast)."""

    duplicate_rule: bool = True
    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: {o: {} for o in PREFIX})
    counter: itertools.count = field(default_factory=lambda: itertools.count(1))  # type: ignore[type-arg]
    index: dict[tuple[str, str], dict[str, set[str]]] = field(
        default_factory=lambda: {(o, f): {} for o, fields in INDEXED.items() for f in fields})

    def put(self, sobject: str, rid: str, record: dict[str, Any]) -> None:
        """Store a record (create or replace), keeping the indexes right."""
        old = self.records[sobject].get(rid)
        for name in INDEXED[sobject]:
            idx = self.index[(sobject, name)]
            if old is not None and old.get(name) is not None:
                ids = idx.get(str(old[name]).casefold())
                if ids is not None:
                    ids.discard(rid)
            if record.get(name) is not None:
                idx.setdefault(str(record[name]).casefold(), set()).add(rid)
        self.records[sobject][rid] = record

    def remove(self, sobject: str, rid: str) -> None:
        old = self.records[sobject].pop(rid, None)
        if old is None:
            return
        for name in INDEXED[sobject]:
            if old.get(name) is not None:
                self.index[(sobject, name)].get(str(old[name]).casefold(), set()).discard(rid)

    def new_id(self, sobject: str) -> str:
        n = next(self.counter)
        return f"{PREFIX[sobject]}{'Sbx'}{n:012d}"[:18].ljust(18, "A")

    def check_object(self, sobject: str) -> None:
        if sobject not in self.records:
            raise RecordError("NOT_FOUND", "The requested resource does not exist")

    def find(self, sobject: str, ext_field: str, value: Any) -> list[str]:
        if ext_field == "Id":
            return [value] if value in self.records[sobject] else []
        if (sobject, ext_field) in self.index:
            return sorted(self.index[(sobject, ext_field)].get(str(value).casefold(), ()))
        want = str(value).casefold()
        return [rid for rid, rec in self.records[sobject].items()
                if rec.get(ext_field) is not None and str(rec[ext_field]).casefold() == want]

    # ------------------------------------------------------------------------------------- writes

    def _values(self, sobject: str, body: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in body.items():
            if key in ("attributes", "Id", "id"):
                continue
            if isinstance(value, dict):  # relationship by external id: Contact__r: {Ext__c: value}
                lookup = relationship_to_field(key)
                target = LOOKUPS.get(sobject, {}).get(lookup)
                if target is None:
                    raise RecordError("INVALID_FIELD", f"No such column '{key}' on sobject of type {sobject}", [key])
                ((ext, ext_value),) = value.items() if len(value) == 1 else (("", None),)
                if ext not in EXTERNAL_IDS.get(target, set()):
                    raise RecordError("INVALID_FIELD", f"Field name provided, {ext} is not an External ID or "
                                      f"indexed field for {target}", [key])
                found = self.find(target, ext, ext_value)
                if not found:
                    raise RecordError("INVALID_FIELD", f"Foreign key external ID: {ext_value} not found for field "
                                      f"{ext} in entity {target}", [key])
                if len(found) > 1:
                    raise RecordError("INVALID_FIELD", f"Foreign key external ID: {ext_value} matches more than one "
                                      f"record for field {ext} in entity {target}", [key])
                out[lookup] = found[0]
                continue
            if key not in FIELDS[sobject]:
                raise RecordError("INVALID_FIELD", f"No such column '{key}' on sobject of type {sobject}", [key])
            if key in NUMBERS and value not in (None, ""):
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    raise RecordError("INVALID_TYPE_ON_FIELD_IN_RECORD", f"{key}: value not of required type: "
                                      f"{value}", [key]) from None
            if key in BOOLEANS and isinstance(value, str):
                value = value.lower() == "true"
            out[key] = value
        return out

    def _check(self, sobject: str, rid: str | None, record: dict[str, Any], old_email: Any) -> None:
        missing = [f for f in REQUIRED.get(sobject, ()) if not record.get(f)]
        if missing:
            raise RecordError("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing)
        email = record.get("Email")
        if (sobject == "Contact" and self.duplicate_rule and email
                and (rid is None or str(email).casefold() != str(old_email or "").casefold())):
            dups = [other for other in self.find("Contact", "Email", email) if other != rid]
            if dups:
                raise RecordError(
                    "DUPLICATES_DETECTED", "Use one of these records?", [],
                    duplicateResult={
                        "allowSave": False,
                        "duplicateRule": "Clasp_Contact_Email",
                        "duplicateRuleEntityType": "Contact",
                        "errorMessage": "You're creating a duplicate record. We recommend you use an existing record "
                                        "instead.",
                        "matchResults": [{
                            "entityType": "Contact",
                            "errors": [],
                            "matchEngine": "ExactMatchEngine",
                            "matchRecords": [{
                                "additionalInformation": [],
                                "fieldDiffs": [],
                                "matchConfidence": 100.0,
                                "record": {"attributes": {"type": "Contact",
                                                          "url": f"/services/data/v60.0/sobjects/Contact/{d}"},
                                           "Id": d},
                            } for d in dups],
                            "rule": "Clasp_Contact_Email_Match",
                            "size": len(dups),
                            "success": True,
                        }],
                    },
                )

    def upsert(self, sobject: str, ext_field: str, value: Any, body: dict[str, Any]) -> tuple[str, bool]:
        """Create or update the record whose ``ext_field`` is ``value``; (id, created)."""
        values = self._values(sobject, body)
        if ext_field != "Id" and body.get(ext_field) not in (None, value) and str(body.get(ext_field)) != str(value):
            raise RecordError("INVALID_FIELD", f"{ext_field} in the body does not match the URL", [ext_field])
        found = self.find(sobject, ext_field, value)
        if len(found) > 1:
            raise MultipleMatches(found)
        now = datetime.now(UTC).isoformat()
        if found:
            rid = found[0]
            current = self.records[sobject][rid]
            merged = {**current, **values}
            self._check(sobject, rid, merged, current.get("Email"))
            merged["LastModifiedDate"] = now
            self.put(sobject, rid, merged)
            return rid, False
        if ext_field == "Id":
            raise RecordError("NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {value}")
        record = {**values, ext_field: value}
        self._check(sobject, None, record, None)
        rid = self.new_id(sobject)
        record.update(Id=rid, CreatedDate=now, LastModifiedDate=now)
        if sobject == "Lead":
            record.setdefault("IsConverted", False)
        self.put(sobject, rid, record)
        return rid, True

    def update(self, sobject: str, rid: str, body: dict[str, Any]) -> None:
        if rid not in self.records[sobject]:
            raise RecordError("ENTITY_IS_DELETED", "entity is deleted", [])
        values = self._values(sobject, body)
        for ext in EXTERNAL_IDS.get(sobject, ()):
            if values.get(ext) is not None and any(other != rid for other in self.find(sobject, ext, values[ext])):
                # External ID fields the metadata package ships are Unique: a second record cannot take one.
                raise RecordError("DUPLICATE_VALUE", f"duplicate value found: {ext} duplicates value on record with "
                                  f"id: {self.find(sobject, ext, values[ext])[0]}", [ext])
        current = self.records[sobject][rid]
        merged = {**current, **values}
        self._check(sobject, rid, merged, current.get("Email"))
        merged["LastModifiedDate"] = datetime.now(UTC).isoformat()
        self.put(sobject, rid, merged)

    def snapshot(self) -> Any:
        return copy.deepcopy((self.records, self.index))

    def restore(self, snapshot: Any) -> None:
        self.records, self.index = snapshot
