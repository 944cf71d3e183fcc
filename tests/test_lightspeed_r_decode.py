"""Decoding R-Series payloads: every record type, every quirk, and clear errors on bad input.

Payloads are written the way the API renders them (all strings, one-vs-many, "" relations), taken
from the shapes in shared/api/lightspeed_r.md.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from plugins.pos_lightspeed_r.mapping import Mapper, image_urls

M = Mapper(currency="USD", anniversary_field="Anniversary")

SALE = {
    "saleID": "2", "timeStamp": "2021-06-06T15:19:18+00:00", "completed": "true", "archived": "false",
    "voided": "false", "createTime": "2021-06-06T15:17:23+00:00", "updatetime": "2021-06-06T15:19:18+00:00",
    "completeTime": "2021-06-06T15:19:18+00:00", "referenceNumber": "", "referenceNumberSource": "",
    "calcSubtotal": "280", "calcTax1": "23.1", "calcTax2": "14", "calcTotal": "317.1", "total": "317.1",
    "customerID": "0", "employeeID": "1", "registerID": "1", "shopID": "1", "quoteID": "0",
    "SaleLines": {"SaleLine": {
        "saleLineID": "4", "unitQuantity": "2", "unitPrice": "45", "calcTotal": "51.73875", "itemID": "3",
        "parentSaleLineID": "0", "isLayaway": "false", "shopID": "1"}},
}


def test_sale_with_a_single_line_object_and_string_money() -> None:
    sale = M.sale(SALE)
    assert sale.external_id == "2" and sale.location_external_id == "1"
    assert sale.client_external_id is None  # customerID "0": a walk-in
    assert sale.associate_external_id == "1"
    assert sale.status == "completed" and sale.channel == "store" and sale.currency == "USD"
    assert (sale.total_minor, sale.tax_minor, sale.subtotal_minor) == (31710, 3710, 28000)
    assert sale.occurred_at == datetime(2021, 6, 6, 15, 19, 18, tzinfo=UTC)
    [line] = sale.lines
    assert (line.external_id, line.quantity, line.unit_price_minor) == ("4", 2, 4500)
    assert line.total_minor == 5174  # 51.73875 rounded half-even to cents, never through a float
    assert line.product_external_id == "3" and line.parent_line_external_id is None


def test_refund_lines_are_negative_and_point_at_their_parent() -> None:
    refund = {**SALE, "saleID": "9", "customerID": "17", "calcSubtotal": "-45", "calcTax1": "-3.71",
              "calcTax2": "0", "calcTotal": "-48.71",
              "SaleLines": {"SaleLine": [
                  {"saleLineID": "30", "unitQuantity": "-1", "unitPrice": "45", "calcTotal": "-48.7125",
                   "itemID": "3", "parentSaleLineID": "4"},
                  {"saleLineID": "31", "unitQuantity": "-1", "unitPrice": "5", "calcTotal": "-5.4125",
                   "itemID": "0", "parentSaleLineID": "5"}]}}
    sale = M.sale(refund)
    assert sale.total_minor == -4871 and sale.client_external_id == "17"
    assert [(ln.quantity, ln.parent_line_external_id) for ln in sale.lines] == [(-1, "4"), (-1, "5")]
    assert sale.lines[1].product_external_id is None  # itemID "0": a misc line


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({"voided": "true"}, "voided"),
        ({"completed": "false", "SaleLines": {"SaleLine": {**SALE["SaleLines"]["SaleLine"], "isLayaway": "true"}}},
         "layaway"),
        ({"completed": "false", "quoteID": "12"}, "quote"),
        ({"completed": "false", "archived": "true"}, "voided"),
        ({"completed": "false"}, "open"),
        ({"completed": True}, "completed"),  # a real JSON boolean is tolerated too
    ],
)
def test_sale_status(changes, status) -> None:
    payload = {**SALE, **changes}
    if payload.get("completed") in ("false", False):
        payload.pop("completeTime")  # absent, not null, on incomplete sales
    assert M.sale(payload).status == status


def test_ecom_from_reference_number_source_or_payment_type() -> None:
    assert M.sale({**SALE, "referenceNumberSource": "shopify", "referenceNumber": "#1001"}).channel == "ecom"
    with_payment = {**SALE, "SalePayments": {"SalePayment": {"amount": "317.1", "PaymentType": {"type": "ecom"}}}}
    assert M.sale(with_payment).channel == "ecom"
    assert M.sale({**SALE, "SaleLines": ""}).lines == []  # an empty relation renders as ""


def test_sale_in_a_zero_decimal_currency() -> None:
    yen = Mapper(currency="JPY")
    assert yen.sale({**SALE, "calcTotal": "3171", "calcTax1": "288", "calcTax2": "0"}).total_minor == 3171


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"saleID": ""}, "no saleID"),
        ({"shopID": "0"}, "no shopID"),
        ({"calcTotal": "12,50"}, "calcTotal='12,50' is not a number"),
        ({"completeTime": "yesterday"}, "completeTime='yesterday' is not an ISO-8601 datetime"),
        ({"voided": "maybe"}, "voided='maybe' is not a boolean"),
        ({"SaleLines": {"SaleLine": {"saleLineID": "1", "unitQuantity": "1.5"}}}, "unitQuantity='1.5'"),
    ],
)
def test_bad_sales_raise_a_clear_value_error(changes, message) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        M.sale({**SALE, **changes})


CUSTOMER = {
    "customerID": "2", "firstName": "Tamberson", "lastName": "The Minotaur",
    "dob": "2011-08-05T04:00:00+00:00", "title": "", "company": "Minotaurs R Us", "creditAccountID": "0",
    "createTime": "2014-05-05T19:44:10+00:00", "timeStamp": "2016-09-23T14:17:18+00:00", "archived": "false",
    "Contact": {"custom": "", "noEmail": "false", "noPhone": "false", "noMail": "false",
                "timeStamp": "2016-10-29T14:49:25+00:00",
                "Phones": {"ContactPhone": [{"number": "360 555 2453", "useType": "Home"},
                                            {"number": "(360) 555-0101", "useType": "Mobile"}]},
                "Emails": {"ContactEmail": {"address": "tam@example.com", "useType": "Primary"}},
                "Addresses": {"ContactAddress": {"address1": "700 St-Antoine E", "city": "Montreal",
                                                 "state": "Quebec", "stateCode": "QC", "zip": "H2Y 1A6",
                                                 "country": "Canada", "countryCode": "CA"}},
                "Websites": ""},
    "Note": {"note": "Prefers email", "isPublic": "false", "timeStamp": "2016-09-23T14:17:18+00:00"},
    "CustomFieldValues": {"CustomFieldValue": [
        {"customFieldValueID": "19", "customFieldID": "1", "name": "Anniversary", "type": "date",
         "value": "2019-04-29T04:00:00+00:00"},
        {"customFieldValueID": "20", "customFieldID": "3", "name": "Preferred Metal", "type": "single_choice",
         "value": {"customFieldChoiceID": "2", "value": "Platinum", "name": "Platinum"}},
        {"customFieldValueID": "21", "customFieldID": "2", "name": "Ring Size", "type": "string", "value": ""}]},
}


def test_customer_with_contacts_dates_custom_fields_and_note() -> None:
    client = M.client(CUSTOMER)
    assert (client.external_id, client.first_name, client.last_name) == ("2", "Tamberson", "The Minotaur")
    assert client.birthday == date(2011, 8, 5)  # local midnight stored in UTC is still the 5th
    assert client.anniversary == date(2019, 4, 29)
    assert client.custom_fields == {"Anniversary": "2019-04-29T04:00:00+00:00", "Preferred Metal": "Platinum"}
    emails = [c for c in client.contacts if c.kind == "email"]
    phones = [c for c in client.contacts if c.kind == "phone"]
    assert [(e.value, e.is_primary) for e in emails] == [("tam@example.com", True)]
    assert [(p.value, p.label, p.is_primary) for p in phones] == [
        ("(360) 555-0101", "Mobile", True), ("360 555 2453", "Home", False)]
    assert client.address == {"line1": "700 St-Antoine E", "city": "Montreal", "region": "QC",
                              "postal_code": "H2Y 1A6", "country": "CA"}
    assert client.note == "Prefers email" and client.archived is False
    assert client.updated_at == datetime(2016, 10, 29, 14, 49, 25, tzinfo=UTC)  # the later Contact edit


def test_dates_east_of_utc_and_plain_dates() -> None:
    east = M.client({**CUSTOMER, "dob": "1981-04-08T23:00:00+00:00"})  # midnight in Paris, the 9th
    assert east.birthday == date(1981, 4, 9)
    assert M.client({**CUSTOMER, "dob": "1981-04-09"}).birthday == date(1981, 4, 9)
    assert M.client({**CUSTOMER, "dob": ""}).birthday is None


def test_empty_contact_and_archived_customer() -> None:
    bare = {"customerID": "5", "firstName": "Ann", "lastName": "", "archived": "true",
            "Contact": {"Phones": "", "Emails": "", "Websites": "",
                        "Addresses": {"ContactAddress": {"address1": "", "city": ""}}}}
    client = M.client(bare)
    assert client.contacts == [] and client.address == {} and client.archived is True
    assert client.birthday is None and client.anniversary is None and client.note is None


def test_bad_customers_raise_value_error() -> None:
    with pytest.raises(ValueError, match="no customerID"):
        M.client({**CUSTOMER, "customerID": "0"})
    with pytest.raises(ValueError, match="dob='31/12/1980'"):
        M.client({**CUSTOMER, "dob": "31/12/1980"})


ITEM = {
    "itemID": "835", "systemSku": "210000000835", "customSku": "", "manufacturerSku": "DY-1", "description":
    "Cable Bracelet", "archived": "false", "itemMatrixID": "0", "timeStamp": "2021-09-19T19:32:43+00:00",
    "Prices": {"ItemPrice": [{"amount": "1250", "useTypeID": "1", "useType": "Default"},
                             {"amount": "0", "useTypeID": "2", "useType": "MSRP"}]},
    "Manufacturer": {"manufacturerID": "1", "name": "David Yurman"},
    "Category": {"categoryID": "5", "name": "Bracelets", "fullPathName": "Jewelry/Bracelets"},
    "Images": {"Image": {"imageID": "68", "filename": "Test Image.jpg", "ordering": "1",
                         "publicID": "dsxcqjwl1s4j6ppmnmec",
                         "baseImageURL": "https://res.cloudinary.com/lightspeed-retail/image/upload/"}},
}


def test_item_with_one_image_object() -> None:
    product = M.product(ITEM)
    assert (product.sku, product.name, product.vendor, product.category) == (
        "DY-1", "Cable Bracelet", "David Yurman", "Jewelry/Bracelets")
    assert product.price_minor == 125000 and product.currency == "USD"
    assert product.image_urls == ["https://res.cloudinary.com/lightspeed-retail/image/upload/dsxcqjwl1s4j6ppmnmec.jpg"]
    assert product.image_missing is False


def test_matrix_variant_falls_back_to_matrix_images_and_missing_is_flagged() -> None:
    matrix_image = {"imageID": "9", "filename": "ring.PNG", "ordering": "2", "publicID": "abc",
                    "baseImageURL": "https://res.cloudinary.com/x/image/upload"}  # no trailing slash here
    variant = {**ITEM, "itemMatrixID": "12", "Images": "",
               "ItemMatrix": {"itemMatrixID": "12", "Images": {"Image": [matrix_image,
                                                                          {**matrix_image, "imageID": "8",
                                                                           "publicID": "first", "ordering": "1"}]}}}
    product = M.product(variant)
    assert product.image_urls == ["https://res.cloudinary.com/x/image/upload/first.png",
                                  "https://res.cloudinary.com/x/image/upload/abc.png"]
    assert product.image_missing is False
    lost = M.product({**ITEM, "itemMatrixID": "12", "Images": "", "ItemMatrix": {"itemMatrixID": "12", "Images": ""}})
    assert lost.image_urls == [] and lost.image_missing is True
    assert image_urls([{"imageID": "1", "publicID": "", "baseImageURL": "https://x/"}]) == []


def test_shop_and_employee() -> None:
    shop = M.location({"shopID": "3", "name": "Rodeo Drive", "timeZone": "US/Pacific", "archived": "false",
                       "timeStamp": "2020-01-01T00:00:00+00:00",
                       "Contact": {"Addresses": {"ContactAddress": {"countryCode": "us"}},
                                   "Phones": {"ContactPhone": {"number": "310-555-0100", "useType": "Work"}}}})
    assert (shop.external_id, shop.timezone, shop.country, shop.currency, shop.phone) == (
        "3", "US/Pacific", "US", "USD", "310-555-0100")
    employee = M.associate({"employeeID": "7", "firstName": "Ava", "lastName": "Lee", "lockOut": "false",
                            "archived": "false", "limitToShopID": "0", "lastShopID": "3",
                            "Contact": {"Emails": {"ContactEmail": {"address": "ava@x.example",
                                                                   "useType": "Primary"}}}})
    assert (employee.external_id, employee.location_external_id, employee.email, employee.active) == (
        "7", "3", "ava@x.example", True)
    assert M.associate({"employeeID": "8", "lockOut": "true"}).active is False
    with pytest.raises(ValueError, match="no shopID"):
        M.location({"name": "x"})
