"""R-Series payloads → Clasp records.

Payloads are read only through :mod:`.quirks`, so strings-for-everything, ``"0"`` foreign keys,
``""`` relations and one-vs-many collections never reach this logic. Every function raises
``ValueError`` with the field at fault when a payload cannot be a valid record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from core.plugin import (
    AssociateRecord,
    ClientRecord,
    ContactRecord,
    LocationRecord,
    ProductRecord,
    SaleLineRecord,
    SaleRecord,
)

from .consent import ConsentPolicy
from .quirks import (
    calendar_date,
    decimal,
    flag,
    integer,
    latest,
    minor_units,
    money,
    nested,
    opt_text,
    ref,
    relation,
    text,
    timestamp,
)

PHONE_ORDER = {"Mobile": 0, "Home": 1, "Work": 2, "Pager": 3, "Fax": 4}
DEFAULT_IMAGE_EXTENSION = "jpg"
# Values of Sale.referenceNumberSource that are not an online channel (some POS flows fill it).
NON_ECOM_SOURCES = frozenset({"", "pos", "register", "in store", "instore"})


def _require(payload: Mapping[str, Any], key: str, what: str) -> str:
    value = text(payload, key)
    if not value or value == "0":
        raise ValueError(f"{what} payload has no {key}")
    return value


def _build(model: type, what: str, **fields: Any) -> Any:
    try:
        return model(**fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"{what} {fields.get('external_id')!r} is invalid: {problems}") from None


@dataclass(frozen=True)
class Mapper:
    """Connector-level facts decoding needs: the account currency and the anniversary field's name."""

    currency: str = "USD"
    anniversary_field: str = "Anniversary"
    default_country: str = "US"
    consent: ConsentPolicy = field(default_factory=ConsentPolicy)

    # ------------------------------------------------------------------------------- shops

    def location(self, payload: Mapping[str, Any]) -> LocationRecord:
        shop_id = _require(payload, "shopID", "Shop")
        contact = relation(payload, "Contact")
        address = next(iter(nested(contact, "Addresses", "ContactAddress")), {})
        country = text(address, "countryCode").upper()
        phones = sorted(nested(contact, "Phones", "ContactPhone"), key=lambda p: PHONE_ORDER.get(text(p, "useType"), 9))
        return _build(
            LocationRecord,
            "Shop",
            external_id=shop_id,
            name=text(payload, "name") or f"Shop {shop_id}",
            # R-Series uses tz database names, old-style aliases included ("US/Pacific"); both resolve.
            timezone=text(payload, "timeZone") or "UTC",
            currency=self.currency,
            country=country if len(country) == 2 else self.default_country,
            phone=next((text(p, "number") for p in phones if text(p, "number")), None),
            updated_at=timestamp(payload, "timeStamp"),
        )

    # ------------------------------------------------------------------------------- employees

    def associate(self, payload: Mapping[str, Any]) -> AssociateRecord:
        contact = relation(payload, "Contact")
        emails = nested(contact, "Emails", "ContactEmail")
        primary = next((e for e in emails if text(e, "useType") == "Primary"), emails[0] if emails else {})
        return _build(
            AssociateRecord,
            "Employee",
            external_id=_require(payload, "employeeID", "Employee"),
            first_name=text(payload, "firstName"),
            last_name=text(payload, "lastName"),
            email=opt_text(primary, "address"),
            location_external_id=ref(payload, "limitToShopID") or ref(payload, "lastShopID"),
            active=not (flag(payload, "archived") or flag(payload, "lockOut")),
            updated_at=latest(timestamp(payload, "timeStamp"), timestamp(contact, "timeStamp")),
        )

    # ------------------------------------------------------------------------------- customers

    def client(self, payload: Mapping[str, Any]) -> ClientRecord:
        customer_id = _require(payload, "customerID", "Customer")
        contact = relation(payload, "Contact")
        contacts: list[ContactRecord] = []
        emails = sorted(nested(contact, "Emails", "ContactEmail"), key=lambda e: text(e, "useType") != "Primary")
        for i, email in enumerate(emails):
            if text(email, "address"):
                contacts.append(ContactRecord(kind="email", value=text(email, "address"),
                                              label=opt_text(email, "useType"), is_primary=i == 0))
        phones = sorted(nested(contact, "Phones", "ContactPhone"), key=lambda p: PHONE_ORDER.get(text(p, "useType"), 9))
        for i, phone in enumerate(phones):
            if text(phone, "number"):
                contacts.append(ContactRecord(kind="phone", value=text(phone, "number"),
                                              label=opt_text(phone, "useType"), is_primary=i == 0))
        address = next(iter(nested(contact, "Addresses", "ContactAddress")), {})
        address_out = unified_address(address)
        custom = self.custom_fields(payload)
        anniversary_raw = next(
            (v for k, v in custom.items() if k.casefold() == self.anniversary_field.casefold()), None
        )
        note = text(relation(payload, "Note"), "note") or None
        return _build(
            ClientRecord,
            "Customer",
            external_id=customer_id,
            first_name=text(payload, "firstName"),
            last_name=text(payload, "lastName"),
            contacts=contacts,
            birthday=calendar_date(payload.get("dob"), "dob"),
            anniversary=calendar_date(anniversary_raw, self.anniversary_field),
            address=address_out,
            note=note,
            custom_fields=custom,
            consent=self.consent.evidence(contact, custom),
            # R-Series customers belong to the account, not to a shop: there is no home shop to map.
            home_location_external_id=None,
            archived=flag(payload, "archived"),
            # Contact edits may not bump Customer.timeStamp (undocumented): take the later of both.
            updated_at=latest(timestamp(payload, "timeStamp"), timestamp(contact, "timeStamp"),
                              timestamp(relation(payload, "Note"), "timeStamp")),
        )

    @staticmethod
    def custom_fields(payload: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for value in nested(payload, "CustomFieldValues", "CustomFieldValue"):
            if flag(value, "deleted"):
                continue
            name = text(value, "name") or f"field_{text(value, 'customFieldID')}"
            raw = value.get("value")
            if isinstance(raw, Mapping):  # single_choice: a choice object
                raw = text(raw, "name") or text(raw, "value")
            elif isinstance(raw, list):  # multi_choice
                raw = [text(c, "name") or text(c, "value") for c in raw if isinstance(c, Mapping)]
            elif raw is not None:
                raw = str(raw)
            if raw in ("", None, []):
                continue
            out[name] = raw
        return out

    # ------------------------------------------------------------------------------- items

    def product(self, payload: Mapping[str, Any]) -> ProductRecord:
        item_id = _require(payload, "itemID", "Item")
        prices = nested(payload, "Prices", "ItemPrice")
        default_price = next((p for p in prices if text(p, "useType") == "Default"), prices[0] if prices else None)
        images = image_urls(nested(payload, "Images", "Image"))
        if not images:
            # Variant photos usually live on the ItemMatrix; the stream embeds it when it had to look.
            images = image_urls(nested(relation(payload, "ItemMatrix"), "Images", "Image"))
        category = relation(payload, "Category")
        return _build(
            ProductRecord,
            "Item",
            external_id=item_id,
            sku=next((v for k in ("customSku", "manufacturerSku", "systemSku") if (v := opt_text(payload, k))), None),
            name=text(payload, "description"),
            vendor=opt_text(relation(payload, "Manufacturer"), "name"),
            category=opt_text(category, "fullPathName") or opt_text(category, "name"),
            description=text(relation(payload, "Note"), "note") or None,
            price_minor=money(default_price, "amount", self.currency) if default_price else None,
            currency=self.currency if default_price else None,
            image_urls=images,
            image_missing=not images,
            archived=flag(payload, "archived"),
            updated_at=timestamp(payload, "timeStamp"),
        )

    # ------------------------------------------------------------------------------- sales

    def sale(self, payload: Mapping[str, Any]) -> SaleRecord:
        sale_id = _require(payload, "saleID", "Sale")
        shop_id = ref(payload, "shopID")
        if shop_id is None:
            raise ValueError(f"Sale {sale_id!r} has no shopID")
        lines_raw = nested(payload, "SaleLines", "SaleLine")
        lines = [self.sale_line(line) for line in lines_raw]
        total = decimal(payload, "calcTotal", default=decimal(payload, "total"))
        tax = decimal(payload, "calcTax1") + decimal(payload, "calcTax2")
        if "calcTax1" not in payload and "calcTax2" not in payload:
            tax = decimal(payload, "taxTotal")
        total_minor = minor_units(total, self.currency)
        tax_minor = minor_units(tax, self.currency)
        occurred = timestamp(payload, "completeTime") or timestamp(payload, "createTime") or timestamp(
            payload, "timeStamp"
        )
        if occurred is None:
            raise ValueError(f"Sale {sale_id!r} has no completeTime, createTime or timeStamp")
        return _build(
            SaleRecord,
            "Sale",
            external_id=sale_id,
            location_external_id=shop_id,
            associate_external_id=ref(payload, "employeeID"),
            client_external_id=ref(payload, "customerID"),  # "0": a walk-in
            channel=sale_channel(payload),
            status=sale_status(payload, lines_raw),
            currency=self.currency,
            subtotal_minor=total_minor - tax_minor,  # after discounts, so subtotal + tax = total
            tax_minor=tax_minor,
            total_minor=total_minor,
            occurred_at=occurred,
            lines=lines,
            # Sale.timeStamp is "legacy" but still moves on edits; updatetime's casing varies.
            updated_at=latest(timestamp(payload, "timeStamp"), timestamp(payload, "updatetime"),
                              timestamp(payload, "updateTime")),
        )

    def sale_line(self, line: Mapping[str, Any]) -> SaleLineRecord:
        line_id = _require(line, "saleLineID", "SaleLine")
        item = relation(line, "Item")
        return _build(
            SaleLineRecord,
            "SaleLine",
            external_id=line_id,
            product_external_id=ref(line, "itemID"),
            sku=opt_text(item, "customSku") or opt_text(item, "systemSku"),
            name=text(item, "description") or text(relation(line, "Note"), "note"),
            quantity=integer(line, "unitQuantity", default=1),
            unit_price_minor=money(line, "unitPrice", self.currency),
            # calcTotal is after line discount and with tax, unrounded ("51.73875"): rounded here.
            total_minor=money(line, "calcTotal", self.currency),
            parent_line_external_id=ref(line, "parentSaleLineID"),
        )


def unified_address(address: Mapping[str, Any]) -> dict[str, Any]:
    """A ContactAddress in Clasp's address shape (line1, line2, city, region, postal_code, country)."""
    country = text(address, "countryCode").upper()
    out = {
        "line1": text(address, "address1"),
        "line2": text(address, "address2"),
        "city": text(address, "city"),
        "region": text(address, "stateCode") or text(address, "state"),
        "postal_code": text(address, "zip"),
        # Clasp keeps ISO country codes; a country only given by name ("Canada") is left out.
        "country": country if len(country) == 2 and country.isalpha() else "",
    }
    return {k: v for k, v in out.items() if v}


def sale_status(payload: Mapping[str, Any], lines: list[dict[str, Any]]) -> str:
    """completed / voided / layaway / quote / open; only "completed" counts as revenue."""
    if flag(payload, "voided"):
        return "voided"
    if any(flag(line, "isLayaway") for line in lines):
        return "layaway"  # layaway lines stay open commitments even on a completed sale
    if flag(payload, "completed"):
        return "completed"
    if flag(payload, "archived"):
        return "voided"  # an abandoned, never-completed sale: it did not happen
    if ref(payload, "quoteID"):
        return "quote"
    return "open"


def sale_channel(payload: Mapping[str, Any]) -> str:
    source = text(payload, "referenceNumberSource").casefold()
    if source not in NON_ECOM_SOURCES:
        return "ecom"
    # With SalePayments.PaymentType loaded, the reserved "ecom" payment type also marks an online order.
    for payment in nested(payload, "SalePayments", "SalePayment"):
        if text(relation(payment, "PaymentType"), "type").casefold() == "ecom":
            return "ecom"
    return "store"


def image_urls(images: list[dict[str, Any]]) -> list[str]:
    """Compose Cloudinary URLs as documented: ``{baseImageURL}{publicID}.{ext}``, in ``ordering``."""
    urls: list[str] = []
    for image in sorted(images, key=lambda i: (integer(i, "ordering", default=0), text(i, "imageID"))):
        public_id = text(image, "publicID")
        base = text(image, "baseImageURL")
        if not public_id or not base:
            continue  # an image row whose upload never finished: nothing to link to
        # baseImageURL already ends in "/" (a naive join gives "upload//id"); publicID has no extension.
        filename = text(image, "filename")
        extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else DEFAULT_IMAGE_EXTENSION
        if not extension.isalnum() or len(extension) > 5:
            extension = DEFAULT_IMAGE_EXTENSION
        url = f"{base.rstrip('/')}/{public_id.lstrip('/')}.{extension}"
        if url not in urls:
            urls.append(url)
    return urls

