"""Request and response bodies of the JSON API (msgspec structs, so the OpenAPI schema is exact)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from core.clients import ClientView, SaleView
from core.models import ClientContact, ClientMerge
from core.models.sales import SALE_STATUSES
from core.search import SearchHit

SaleStatus = Literal["completed", "voided", "layaway", "quote", "open"]
assert set(SaleStatus.__args__) == set(SALE_STATUSES)  # type: ignore[attr-defined]
ConsentStatus = Literal["opted_in", "opted_out", "unknown"]


class Address(msgspec.Struct, kw_only=True, omit_defaults=False, forbid_unknown_fields=True):
    """A postal address. Every part is optional; ``country`` is an ISO 3166 alpha-2 code."""

    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    region: Annotated[str | None, Meta(description="State, province or county")] = None
    postal_code: str | None = None
    country: Annotated[str | None, Meta(examples=["US"])] = None


class Contact(msgspec.Struct, kw_only=True):
    kind: Literal["email", "phone"]
    value: Annotated[str, Meta(description="Normalised: lower-case email, E.164 phone")]
    label: str | None
    is_primary: bool
    unusable: Annotated[bool, Meta(description="The messaging provider reported it cannot receive messages")]
    source_connector_id: int | None


class LastPurchaseOut(msgspec.Struct, kw_only=True):
    occurred_at: datetime
    location_id: int
    location_name: str


class ClientSummary(msgspec.Struct, kw_only=True):
    id: int
    first_name: str
    last_name: str
    email: Annotated[str | None, Meta(description="Primary email")]
    phone: Annotated[str | None, Meta(description="Primary phone (E.164)")]
    home_location_id: int | None
    home_location_name: Annotated[str | None, Meta(description="The home store's name")] = None
    owner_associate_id: int | None
    archived: bool
    updated_at: datetime
    last_purchase: Annotated[
        LastPurchaseOut | None,
        Meta(description="The latest completed sale (not a refund) at a store the token's user may see"),
    ] = None
    match: Annotated[
        Literal["exact", "name", "partial"] | None,
        Meta(description="With `q`: how the client matched (exact phone/email, name, part of a number/address)"),
    ] = None


class ClientList(msgspec.Struct, kw_only=True):
    items: list[ClientSummary]
    next_cursor: Annotated[str | None, Meta(description="Pass as ?cursor= for the next page; null on the last")]


class ExternalRefOut(msgspec.Struct, kw_only=True):
    connector_id: int
    connector_name: str
    connector_type: str
    external_id: str
    synced_at: datetime


class ConsentOut(msgspec.Struct, kw_only=True):
    status: ConsentStatus
    source: str | None
    recorded_at: datetime | None


class SaleLineOut(msgspec.Struct, kw_only=True):
    id: int
    product_id: int | None
    sku: str | None
    name: str
    quantity: Annotated[int, Meta(description="Negative for a returned piece")]
    unit_price_minor: int
    total_minor: int
    parent_line_id: Annotated[int | None, Meta(description="The line a return refunds")]


class SaleOut(msgspec.Struct, kw_only=True):
    id: int
    location_id: int
    associate_id: int | None
    client_id: int | None
    channel: Literal["store", "ecom"]
    status: SaleStatus
    currency: Annotated[str, Meta(description="ISO 4217; amounts are integer minor units of it")]
    subtotal_minor: int
    tax_minor: int
    total_minor: int
    occurred_at: datetime
    lines: list[SaleLineOut]


class SaleList(msgspec.Struct, kw_only=True):
    items: list[SaleOut]
    next_cursor: str | None


class MergeOut(msgspec.Struct, kw_only=True):
    id: int
    survivor_id: int
    absorbed_id: int
    reason: str
    actor: str
    created_at: datetime
    undone_at: datetime | None


class ClientDetail(msgspec.Struct, kw_only=True):
    id: int
    first_name: str
    last_name: str
    birthday: date | None
    anniversary: date | None
    address: Address
    note: str | None
    home_location_id: int | None
    owner_associate_id: int | None
    merged_into_id: Annotated[int | None, Meta(description="Set when this client was absorbed by a merge")]
    archived: bool
    created_at: datetime
    updated_at: datetime
    contacts: list[Contact]
    external_refs: list[ExternalRefOut]
    consent: Annotated[dict[str, ConsentOut], Meta(description="Current status per channel: sms, email, call")]
    provenance: Annotated[
        dict[str, dict[str, str | int | None]],
        Meta(description="Where each field's value came from: source, connector_id, ref, at"),
    ]
    sales: Annotated[list[SaleOut], Meta(description="Most recent first, at most 50; see GET /sales?client_id=")]
    sales_total: int
    merges: Annotated[list[MergeOut], Meta(description="Merges into this client, newest first")]


class ClientPatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Fields to change; omitted fields stay as they are, null clears."""

    first_name: str | UnsetType = UNSET
    last_name: str | UnsetType = UNSET
    emails: Annotated[
        list[str] | UnsetType | None, Meta(description="The complete list of emails; the first is primary")
    ] = UNSET
    phones: Annotated[
        list[str] | UnsetType | None,
        Meta(
            description="The complete list of phones in any format; local numbers are read in the home store's "
            "country; the first is primary"
        ),
    ] = UNSET
    address: Annotated[Address | UnsetType | None, Meta(description="The complete address")] = UNSET
    birthday: date | UnsetType | None = UNSET
    anniversary: date | UnsetType | None = UNSET
    note: str | UnsetType | None = UNSET

    def changes(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if value is UNSET:
                continue
            if isinstance(value, Address):
                value = {k: v for k, v in msgspec.structs.asdict(value).items() if v is not None}
            out[name] = value
        return out


class MergeRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    other_id: Annotated[int, Meta(description="The client to absorb into this one")]


class UnmergeRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    merge_id: Annotated[int | None, Meta(description="Omit to undo the latest merge into this client")] = None


class MergeResult(msgspec.Struct, kw_only=True):
    merge: MergeOut
    client: ClientDetail


class UnmergeResult(msgspec.Struct, kw_only=True):
    merge: MergeOut
    client: ClientDetail
    restored_client_id: int


# ------------------------------------------------------------------------------------------ mapping


def contact_out(c: ClientContact) -> Contact:
    return Contact(
        kind=c.kind,  # type: ignore[arg-type]
        value=c.value,
        label=c.label,
        is_primary=c.is_primary,
        unusable=c.unusable,
        source_connector_id=c.source_connector_id,
    )


def client_summary(hit: SearchHit) -> ClientSummary:
    client = hit.client
    bought = hit.last_purchase
    return ClientSummary(
        id=client.id,  # type: ignore[arg-type]
        first_name=client.first_name,
        last_name=client.last_name,
        email=hit.email,
        phone=hit.phone,
        home_location_id=client.home_location_id,
        home_location_name=hit.home_location,
        owner_associate_id=client.owner_associate_id,
        archived=client.archived,
        updated_at=client.updated_at,
        last_purchase=LastPurchaseOut(
            occurred_at=bought.occurred_at, location_id=bought.location_id, location_name=bought.location_name
        )
        if bought
        else None,
        match=hit.match,  # type: ignore[arg-type]
    )


def sale_out(view: SaleView) -> SaleOut:
    s = view.sale
    return SaleOut(
        id=s.id,  # type: ignore[arg-type]
        location_id=s.location_id,
        associate_id=s.associate_id,
        client_id=s.client_id,
        channel=s.channel,  # type: ignore[arg-type]
        status=s.status,  # type: ignore[arg-type]
        currency=s.currency,
        subtotal_minor=s.subtotal_minor,
        tax_minor=s.tax_minor,
        total_minor=s.total_minor,
        occurred_at=s.occurred_at,
        lines=[
            SaleLineOut(
                id=line.id,  # type: ignore[arg-type]
                product_id=line.product_id,
                sku=line.sku,
                name=line.name,
                quantity=line.quantity,
                unit_price_minor=line.unit_price_minor,
                total_minor=line.total_minor,
                parent_line_id=line.parent_line_id,
            )
            for line in view.lines
        ],
    )


def merge_out(m: ClientMerge) -> MergeOut:
    return MergeOut(
        id=m.id,  # type: ignore[arg-type]
        survivor_id=m.survivor_id,
        absorbed_id=m.absorbed_id,
        reason=m.reason,
        actor=m.actor,
        created_at=m.created_at,
        undone_at=m.undone_at,
    )


def _address(raw: dict[str, object] | None) -> Address:
    raw = raw or {}
    return Address(**{k: str(raw[k]) for k in Address.__struct_fields__ if raw.get(k) not in (None, "")})


def _scalar(value: object) -> str | int | None:
    return value if value is None or isinstance(value, str | int) else str(value)


def client_detail(view: ClientView) -> ClientDetail:
    c = view.client
    return ClientDetail(
        id=c.id,  # type: ignore[arg-type]
        first_name=c.first_name,
        last_name=c.last_name,
        birthday=c.birthday,
        anniversary=c.anniversary,
        address=_address(c.address),
        note=c.note,
        home_location_id=c.home_location_id,
        owner_associate_id=c.owner_associate_id,
        merged_into_id=c.merged_into_id,
        archived=c.archived,
        created_at=c.created_at,
        updated_at=c.updated_at,
        contacts=[contact_out(x) for x in view.contacts],
        external_refs=[
            ExternalRefOut(
                connector_id=r.connector_id,
                connector_name=r.connector_name,
                connector_type=r.connector_type,
                external_id=r.external_id,
                synced_at=r.synced_at,
            )
            for r in view.refs
        ],
        consent={
            channel: ConsentOut(
                status=row.status if row else "unknown",  # type: ignore[arg-type]
                source=row.source if row else None,
                recorded_at=row.recorded_at if row else None,
            )
            for channel, row in view.consent.items()
        },
        provenance={
            name: {k: _scalar(v) for k, v in info.items()} if isinstance(info, dict) else {"source": str(info)}
            for name, info in (c.provenance or {}).items()
        },
        sales=[sale_out(s) for s in view.sales],
        sales_total=view.sales_total,
        merges=[merge_out(m) for m in view.merges],
    )
