"""A deterministic (seeded) jewelry chain on R-Series: shops, staff, customers, items, years of sales.

Rows are kept with native Python values (ints, Decimals, bools, aware datetimes, lists for
collections); :mod:`.render` turns them into R-Series' all-strings, one-vs-many JSON. The generator
also computes its own :class:`Truth` — what a correct connector must end up with — from the numbers
it decided, never by parsing what it serves.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from zoneinfo import ZoneInfo

CENT = Decimal("0.01")
IMAGE_BASE = "https://res.cloudinary.com/lightspeed-retail/image/upload/"

# City, tz database name as R-Series shows it, sales tax, area codes (555-01xx: fictional numbers).
CITIES: list[tuple[str, str, str, Decimal, tuple[str, ...]]] = [
    ("Fifth Avenue", "New York", "America/New_York", Decimal("0.08875"), ("212", "646", "917", "718")),
    ("Oak Street", "Chicago", "America/Chicago", Decimal("0.1025"), ("312", "773", "872")),
    ("Rodeo Drive", "Beverly Hills", "US/Pacific", Decimal("0.095"), ("310", "424", "213", "323")),
    ("Larimer Square", "Denver", "America/Denver", Decimal("0.0881"), ("303", "720")),
    ("Bal Harbour", "Miami", "America/New_York", Decimal("0.07"), ("305", "786")),
    ("Pike Place", "Seattle", "America/Los_Angeles", Decimal("0.1035"), ("206", "425")),
    ("Newbury Street", "Boston", "America/New_York", Decimal("0.0625"), ("617", "857")),
    ("Highland Park", "Dallas", "America/Chicago", Decimal("0.0825"), ("214", "469", "972")),
]
STATE_CODES = {
    "New York": "NY", "Chicago": "IL", "Beverly Hills": "CA", "Denver": "CO", "Miami": "FL", "Seattle": "WA",
    "Boston": "MA", "Dallas": "TX",
}
DESIGNERS = ["David Yurman", "Roberto Coin", "Mikimoto", "John Hardy", "Marco Bicego", "Temple St. Clair",
             "Alex Sepkus", "Hearts On Fire", "Gabriel & Co.", "Tacori", "Lagos", "Ippolita"]
CATEGORIES = [("Rings", "Rings/Engagement"), ("Bands", "Rings/Wedding Bands"), ("Necklaces", "Necklaces"),
              ("Earrings", "Earrings"), ("Bracelets", "Bracelets"), ("Watches", "Watches")]
PIECES = {
    "Rings": ["Solitaire Ring", "Halo Engagement Ring", "Three-Stone Ring", "Cushion Cut Ring"],
    "Bands": ["Eternity Band", "Milgrain Band", "Diamond Wedding Band", "Classic Band"],
    "Necklaces": ["Pearl Strand", "Pendant Necklace", "Station Necklace", "Tennis Necklace"],
    "Earrings": ["Diamond Studs", "Pearl Drops", "Hoop Earrings", "Chandelier Earrings"],
    "Bracelets": ["Cable Bracelet", "Tennis Bracelet", "Cuff", "Bangle"],
    "Watches": ["Automatic Watch", "Chronograph", "Dress Watch"],
}
METALS = ["18k Yellow Gold", "18k White Gold", "Platinum", "Sterling Silver", "Rose Gold"]
FIRST = ["Olivia", "Liam", "Emma", "Noah", "Ava", "Elijah", "Sophia", "James", "Isabella", "William", "Mia",
         "Benjamin", "Charlotte", "Lucas", "Amelia", "Henry", "Harper", "Alexander", "Evelyn", "Daniel", "Abigail",
         "Matthew", "Emily", "Samuel", "Grace", "David", "Chloe", "Joseph", "Victoria", "Carter", "Priya",
         "Mateo", "Aaliyah", "Wei", "Fatima", "Hiroshi", "Sofía", "Dmitri", "Zoë", "Renée"]
LAST = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
        "Hernandez", "Lopez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee",
        "Perez", "Thompson", "White", "Harris", "Clark", "Lewis", "Robinson", "Walker", "Young", "Allen",
        "O'Brien", "McDonald", "de la Cruz", "Nguyen", "Patel", "Kim", "Cohen", "Rossi", "Schmidt", "Okafor"]
EMAIL_DOMAINS = ["example.com", "example.net", "example.org"]
ECOM_SOURCES = ["ecom", "shopify"]


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


def to_minor(value: Decimal) -> int:
    return int((value * 100).to_integral_value(rounding=ROUND_HALF_EVEN))


@dataclass
class Truth:
    """What a connector that read everything correctly (within ``years``) must have found."""

    shops: int = 0
    employees: int = 0
    customer_records: int = 0
    archived_customers: int = 0
    distinct_persons: int = 0
    persons_with_duplicates: int = 0
    customers_with_birthday: int = 0
    customers_with_anniversary: int = 0
    # Consent as the shops recorded it (per customer record): noEmail/noPhone/noMail unset, and the
    # "Text Opt-In" / "Wants Catalog" custom fields ticked.
    customers_email_ok: int = 0
    customers_phone_ok: int = 0
    customers_mail_ok: int = 0
    customers_text_opt_in: int = 0
    customers_wants_catalog: int = 0
    items: int = 0
    items_image_missing: int = 0
    items_with_matrix_images: int = 0
    sales: int = 0  # in the history window
    sales_before_window: int = 0
    completed: int = 0
    completed_total_minor: int = 0  # net: refund sales are completed with negative totals
    completed_tax_minor: int = 0
    refund_sales: int = 0
    refund_lines: int = 0
    refund_total_minor: int = 0
    voided: int = 0
    abandoned: int = 0  # archived incomplete sales
    layaway: int = 0
    quote: int = 0
    ecom: int = 0
    walk_ins: int = 0  # sales of any status without a customer
    completed_walk_ins: int = 0
    sale_lines: int = 0
    currency: str = "USD"
    # customerID -> person number, so tests can check that records of one person were unified.
    person_of_customer: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Dataset:
    account_id: int
    account_name: str
    currency: str
    now: datetime
    shops: dict[int, dict[str, Any]] = field(default_factory=dict)
    employees: dict[int, dict[str, Any]] = field(default_factory=dict)
    customers: dict[int, dict[str, Any]] = field(default_factory=dict)
    custom_fields: dict[int, dict[str, Any]] = field(default_factory=dict)
    manufacturers: dict[int, dict[str, Any]] = field(default_factory=dict)
    categories: dict[int, dict[str, Any]] = field(default_factory=dict)
    matrices: dict[int, dict[str, Any]] = field(default_factory=dict)
    items: dict[int, dict[str, Any]] = field(default_factory=dict)
    sales: dict[int, dict[str, Any]] = field(default_factory=dict)
    truth: Truth = field(default_factory=Truth)
    window_start: datetime | None = None

    def table(self, resource: str) -> dict[int, dict[str, Any]]:
        return {
            "Shop": self.shops, "Employee": self.employees, "Customer": self.customers, "Item": self.items,
            "ItemMatrix": self.matrices, "Sale": self.sales, "Manufacturer": self.manufacturers,
            "Category": self.categories,
        }[resource]


class _Phones:
    """Hands out unique fictional numbers (NPA-555-01XX) per city; None when a city runs out."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def take(self, rng: random.Random, area_codes: tuple[str, ...]) -> str | None:
        for _ in range(40):
            number = f"{rng.choice(area_codes)}5550{rng.randint(100, 199)}"
            if number not in self.used:
                self.used.add(number)
                return number
        for npa in area_codes:
            for line in range(100, 200):
                number = f"{npa}5550{line}"
                if number not in self.used:
                    self.used.add(number)
                    return number
        return None


def phone_format(digits: str, style: int) -> str:
    npa, nxx, line = digits[:3], digits[3:6], digits[6:]
    return [f"({npa}) {nxx}-{line}", f"{npa}-{nxx}-{line}", f"{npa}.{nxx}.{line}", f"+1 {npa} {nxx} {line}",
            f"{npa}{nxx}{line}", f"1-{npa}-{nxx}-{line}"][style % 6]


def local_midnight_utc(day: date, tz: str) -> datetime:
    """How R-Series stores a date field: the shop's local midnight, expressed in UTC."""
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(tz)).astimezone(UTC)


def generate(
    *,
    shops: int = 3,
    clients: int = 300,
    years: int = 5,
    seed: int = 7,
    sales_per_day: float = 3.0,
    items: int | None = None,
    now: datetime | None = None,
    account_id: int = 84001,
) -> Dataset:
    rng = random.Random(seed)
    anchor = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    ds = Dataset(account_id=account_id, account_name="Maison Clasp Jewelers", currency="USD", now=anchor)
    truth = ds.truth
    shops = max(1, min(shops, len(CITIES)))
    history_start = anchor - timedelta(days=365.2425 * years)
    ds.window_start = history_start
    opened = history_start - timedelta(days=400)

    # ---- shops and staff
    for i in range(shops):
        street, city, tz, rate, codes = CITIES[i]
        shop_id = i + 1
        ds.shops[shop_id] = {
            "shopID": shop_id, "name": f"Maison Clasp {city}", "serviceRate": Decimal(0), "timeZone": tz,
            "taxLabor": False, "labelTitle": "Maison Clasp", "labelMsrp": False, "archived": False,
            "timeStamp": opened + timedelta(days=i * 3), "companyRegistrationNumber": "", "vatNumber": "",
            "zebraBrowserPrint": False, "contactID": 1000 + shop_id, "taxCategoryID": shop_id,
            "receiptSetupID": 1, "ccGatewayID": 0, "priceLevelID": 1,
            "_tax_rate": rate, "_area_codes": codes,
            "Contact": {"contactID": 1000 + shop_id, "custom": "", "noEmail": False, "noPhone": False,
                        "noMail": False, "timeStamp": opened,
                        "Addresses": [{"address1": f"{100 + i * 17} {street}", "address2": "", "city": city,
                                       "state": city, "stateCode": STATE_CODES[city], "zip": f"{10001 + i * 911}",
                                       "country": "United States", "countryCode": "US"}],
                        "Phones": [{"number": phone_format(f"{codes[0]}5550{100 + i}", 0), "useType": "Work"}],
                        "Emails": [{"address": f"{city.lower().replace(' ', '')}@maisonclasp.example.com",
                                    "useType": "Primary"}],
                        "Websites": []},
        }
    phones = _Phones()
    for shop_id in ds.shops:  # the shops' own numbers are not customers'
        phones.used.add(f"{ds.shops[shop_id]['_area_codes'][0]}5550{100 + shop_id - 1}")
    employee_id = 0
    for shop_id in ds.shops:
        for n in range(rng.randint(3, 5)):
            employee_id += 1
            first, last = rng.choice(FIRST), rng.choice(LAST)
            archived = n == 4 and rng.random() < 0.5  # a former associate
            ds.employees[employee_id] = {
                "employeeID": employee_id, "firstName": first, "lastName": last, "lockOut": False,
                "archived": archived, "timeStamp": opened + timedelta(days=employee_id),
                "contactID": 2000 + employee_id, "clockInEmployeeHoursID": 0, "employeeRoleID": 1 if n == 0 else 2,
                "limitToShopID": shop_id, "lastShopID": shop_id, "lastSaleID": 0, "lastRegisterID": shop_id,
                "Contact": {"contactID": 2000 + employee_id, "custom": "", "noEmail": False, "noPhone": True,
                            "noMail": True, "timeStamp": opened,
                            "Emails": [{"address": f"{first.lower()}.{employee_id}@maisonclasp.example.com",
                                        "useType": "Primary"}],
                            "Phones": [], "Addresses": [], "Websites": []},
            }
    staff_by_shop = {s: [e for e, row in ds.employees.items() if row["limitToShopID"] == s] for s in ds.shops}

    # ---- customer custom fields
    ds.custom_fields = {
        1: {"customFieldID": 1, "name": "Anniversary", "type": "date", "uom": "", "decimalPrecision": 0,
            "archived": False, "default": ""},
        2: {"customFieldID": 2, "name": "Ring Size", "type": "string", "uom": "", "decimalPrecision": 0,
            "archived": False, "default": ""},
        3: {"customFieldID": 3, "name": "Preferred Metal", "type": "single_choice", "uom": "",
            "decimalPrecision": 0, "archived": False, "default": ""},
        4: {"customFieldID": 4, "name": "Text Opt-In", "type": "boolean", "uom": "", "decimalPrecision": 0,
            "archived": False, "default": "false"},
        5: {"customFieldID": 5, "name": "Wants Catalog", "type": "boolean", "uom": "", "decimalPrecision": 0,
            "archived": False, "default": "false"},
    }

    # ---- persons and their customer records (some registered at two shops)
    customer_id = 0
    customers_of_person: dict[int, list[int]] = {}
    used_emails: set[str] = set()
    for person in range(1, max(0, clients) + 1):
        home = rng.choice(list(ds.shops))
        codes = ds.shops[home]["_area_codes"]
        first, last = rng.choice(FIRST), rng.choice(LAST)
        local = f"{first}.{last}".lower().replace(" ", "").replace("'", "")
        local = local.encode("ascii", "ignore").decode() or "client"
        email = f"{local}{person}@{rng.choice(EMAIL_DOMAINS)}"
        used_emails.add(email)
        has_email = rng.random() < 0.85
        phone = phones.take(rng, codes) if rng.random() < 0.8 or not has_email else None
        if not has_email and phone is None:
            has_email = True
        tz = ds.shops[home]["timeZone"]
        dob = date(rng.randint(1948, 2002), rng.randint(1, 12), rng.randint(1, 28)) if rng.random() < 0.7 else None
        anniversary = (date(rng.randint(1975, 2024), rng.randint(1, 12), rng.randint(1, 28))
                       if rng.random() < 0.3 else None)
        created = opened + timedelta(days=rng.uniform(0, (anchor - opened).days - 30))
        twin_shop = None
        if len(ds.shops) > 1 and rng.random() < 0.12:
            twin_shop = rng.choice([s for s in ds.shops if s != home])
        records = [(home, 0)] + ([(twin_shop, 1)] if twin_shop else [])
        customers_of_person[person] = []
        # Consent draws come from their own generator so the rest of the chain stays as it was. A
        # shop asks at the till: about 55% agree to emails, three in four of those with a phone tick
        # "Text Opt-In" (about 40% of all clients), some want the printed catalog. Unasked customers keep Lightspeed's
        # defaults (noEmail/noPhone/noMail "true").
        crng = random.Random(seed * 1_000_003 + person)
        email_ok = has_email and crng.random() < 0.6
        text_ok = phone is not None and crng.random() < 0.75
        phone_ok = phone is not None and (text_ok or crng.random() < 0.3)
        catalog_ok = crng.random() < 0.2
        for shop_id, variant in records:
            customer_id += 1
            emails = []
            phones_out = []
            shared_email = has_email and (variant == 0 or phone is None or rng.random() < 0.7)
            if shared_email:
                shown = email
                if variant:  # same address typed differently at the other shop
                    shown = f"  {local.title()}{person}@{email.split('@')[1].upper()} "
                emails.append({"address": shown, "useType": "Primary"})
            if phone and (variant == 0 or not shared_email or rng.random() < 0.6):
                phones_out.append({"number": phone_format(phone, rng.randint(0, 5) if variant else 0),
                                   "useType": rng.choice(["Mobile", "Mobile", "Home"])})
            if variant == 0 and rng.random() < 0.1:
                phones_out.append({"number": phone_format(phones.take(rng, codes) or phone or "", 1),
                                   "useType": "Work"})
            phones_out = [p for p in phones_out if p["number"]]
            rec_created = created + timedelta(days=variant * rng.randint(30, 600))
            rec_created = min(rec_created, anchor - timedelta(days=2))
            custom_values = []
            if anniversary:
                custom_values.append({"customFieldValueID": customer_id * 10 + 1, "customFieldID": 1,
                                      "name": "Anniversary", "type": "date",
                                      "value": local_midnight_utc(anniversary, tz)})
                truth.customers_with_anniversary += 1
            if rng.random() < 0.25:
                custom_values.append({"customFieldValueID": customer_id * 10 + 2, "customFieldID": 2,
                                      "name": "Ring Size", "type": "string",
                                      "value": str(rng.choice([4.5, 5, 5.5, 6, 6.5, 7, 7.5, 8, 9]))})
            if rng.random() < 0.2:
                metal = rng.choice(METALS)
                custom_values.append({"customFieldValueID": customer_id * 10 + 3, "customFieldID": 3,
                                      "name": "Preferred Metal", "type": "single_choice",
                                      "value": {"customFieldChoiceID": METALS.index(metal) + 1, "value": metal,
                                                "name": metal}})
            if text_ok and phones_out:
                custom_values.append({"customFieldValueID": customer_id * 10 + 4, "customFieldID": 4,
                                      "name": "Text Opt-In", "type": "boolean", "value": "true"})
                truth.customers_text_opt_in += 1
            if catalog_ok:
                custom_values.append({"customFieldValueID": customer_id * 10 + 5, "customFieldID": 5,
                                      "name": "Wants Catalog", "type": "boolean", "value": "true"})
                truth.customers_wants_catalog += 1
            no_email = not (emails and email_ok)
            no_phone = not (phones_out and phone_ok)
            truth.customers_email_ok += not no_email
            truth.customers_phone_ok += not no_phone
            truth.customers_mail_ok += catalog_ok
            archived = rng.random() < 0.02
            truth.archived_customers += archived
            if dob:
                truth.customers_with_birthday += 1
            ds.customers[customer_id] = {
                "customerID": customer_id, "firstName": first, "lastName": last,
                "dob": local_midnight_utc(dob, tz) if dob else None, "archived": archived,
                "title": "", "company": "", "companyRegistrationNumber": "", "vatNumber": "",
                "createTime": rec_created, "timeStamp": rec_created + timedelta(minutes=rng.randint(0, 600)),
                "creditAccountID": 0, "customerTypeID": 1, "discountID": 0, "taxCategoryID": 0,
                "contactID": 5000 + customer_id, "noteID": 8000 + customer_id, "employeeID": 0, "measurementID": 0,
                "Contact": {
                    "contactID": 5000 + customer_id, "custom": "", "noEmail": no_email, "noPhone": no_phone,
                    "noMail": not catalog_ok, "timeStamp": rec_created,
                    "Addresses": [{"address1": f"{rng.randint(1, 999)} {rng.choice(['Park', 'Elm', 'Main', 'Lake'])}"
                                               f" {rng.choice(['Ave', 'St', 'Blvd'])}",
                                   "address2": "", "city": CITIES[shop_id - 1][1], "state": "",
                                   "stateCode": STATE_CODES[CITIES[shop_id - 1][1]],
                                   "zip": f"{rng.randint(10000, 99999)}",
                                   "country": "United States", "countryCode": "US"}] if rng.random() < 0.6 else [],
                    "Phones": phones_out, "Emails": emails, "Websites": [],
                },
                "Note": {"noteID": 8000 + customer_id,
                         "note": rng.choice(["Prefers yellow gold.", "Anniversary in spring — husband shops late.",
                                             "VIP: call before trunk shows.", "Allergic to nickel."])
                         if rng.random() < 0.2 else "",
                         "isPublic": False, "timeStamp": rec_created},
                "CustomFieldValues": custom_values,
                "_person": person, "_home": shop_id,
            }
            truth.person_of_customer[str(customer_id)] = person
            customers_of_person[person].append(customer_id)
    truth.customer_records = len(ds.customers)
    truth.distinct_persons = len(customers_of_person)
    truth.persons_with_duplicates = sum(1 for c in customers_of_person.values() if len(c) > 1)

    # ---- catalog: designers, categories, matrices (images usually there), items
    for i, name in enumerate(DESIGNERS, start=1):
        ds.manufacturers[i] = {"manufacturerID": i, "name": name, "createTime": opened, "timeStamp": opened}
    for i, (_, path) in enumerate(CATEGORIES, start=1):
        ds.categories[i] = {"categoryID": i, "name": path.split("/")[-1], "nodeDepth": path.count("/"),
                            "fullPathName": path, "leftNode": i * 2, "rightNode": i * 2 + 1, "parentID": 0,
                            "createTime": opened, "timeStamp": opened}
    n_items = items if items is not None else max(40, 30 + clients // 3)
    image_id = 0
    item_id = 0
    matrix_id = 0

    def image(owner_item: int, owner_matrix: int, ordering: int) -> dict[str, Any]:
        nonlocal image_id
        image_id += 1
        public = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(20))
        ext = rng.choice(["jpg", "jpg", "png"])
        return {"imageID": image_id, "description": "", "filename": f"Product Photo {image_id}.{ext}",
                "ordering": ordering, "publicID": public, "baseImageURL": IMAGE_BASE,
                "size": rng.randint(80_000, 900_000), "createTime": opened, "timeStamp": opened,
                "itemID": owner_item, "itemMatrixID": owner_matrix}

    while item_id < n_items:
        category_index = rng.randrange(len(CATEGORIES))
        category_key = CATEGORIES[category_index][0]
        designer = rng.randrange(len(DESIGNERS)) + 1
        piece = rng.choice(PIECES[category_key])
        metal = rng.choice(METALS)
        base_price = Decimal(rng.choice([195, 295, 450, 695, 895, 1250, 1850, 2400, 3600, 4950, 7800, 12500]))
        created = opened + timedelta(days=rng.randint(0, 300))
        in_matrix = category_key in ("Rings", "Bands") and rng.random() < 0.6
        variants = rng.randint(2, 4) if in_matrix else 1
        current_matrix = 0
        matrix_has_images = False
        if in_matrix:
            matrix_id += 1
            current_matrix = matrix_id
            matrix_has_images = rng.random() < 0.85
            ds.matrices[matrix_id] = {
                "itemMatrixID": matrix_id, "description": f"{DESIGNERS[designer - 1]} {piece}",
                "itemType": "default", "archived": False, "categoryID": category_index + 1,
                "manufacturerID": designer, "createTime": created, "timeStamp": created,
                "Images": [image(0, matrix_id, o) for o in range(1, rng.randint(1, 3) + 1)] if matrix_has_images
                else [],
            }
        for v in range(variants):
            if item_id >= n_items:
                break
            item_id += 1
            size = f" Size {5 + v}" if in_matrix else ""
            own_images = [] if in_matrix else (
                [image(item_id, 0, o) for o in range(1, rng.randint(1, 3) + 1)] if rng.random() < 0.88 else []
            )
            price = base_price + Decimal(v * 50)
            ds.items[item_id] = {
                "itemID": item_id, "systemSku": 210000000000 + item_id, "defaultCost": cents(price * Decimal("0.45")),
                "avgCost": cents(price * Decimal("0.45")), "discountable": True, "tax": True, "archived": False,
                "itemType": "default", "serialized": category_key == "Watches",
                "description": f"{DESIGNERS[designer - 1]} {piece}, {metal}{size}", "modelYear": 0, "upc": "",
                "ean": "", "customSku": f"{DESIGNERS[designer - 1][:3].upper()}-{item_id:05d}",
                "manufacturerSku": "", "createTime": created, "timeStamp": created + timedelta(hours=v),
                "publishToEcom": rng.random() < 0.5, "categoryID": category_index + 1, "taxClassID": 1,
                "departmentID": 0, "itemMatrixID": current_matrix, "manufacturerID": designer, "seasonID": 0,
                "defaultVendorID": designer,
                "Prices": [{"amount": price, "useTypeID": 1, "useType": "Default"},
                           {"amount": cents(price * Decimal("1.1")), "useTypeID": 2, "useType": "MSRP"},
                           {"amount": price, "useTypeID": 3, "useType": "Online"}],
                "Images": own_images,
                "_price": price,
            }
            if not own_images and not (in_matrix and matrix_has_images):
                truth.items_image_missing += 1
            if in_matrix and matrix_has_images:
                truth.items_with_matrix_images += 1
    truth.items = len(ds.items)
    truth.shops = len(ds.shops)
    truth.employees = len(ds.employees)

    # ---- sales
    _generate_sales(ds, rng, staff_by_shop, customers_of_person, history_start, sales_per_day, years)
    return ds


def _line(ds: Dataset, rng: random.Random, item_id: int, qty: int, rate: Decimal, discount_pct: Decimal,
          layaway: bool) -> dict[str, Any]:
    price = ds.items[item_id]["_price"]
    subtotal = price * qty
    discount = cents(subtotal * discount_pct)
    tax = (subtotal - discount) * rate  # unrounded, as R-Series renders line taxes
    return {"unitQuantity": qty, "unitPrice": price, "normalUnitPrice": price, "discountAmount": Decimal(0),
            "discountPercent": discount_pct, "avgCost": ds.items[item_id]["avgCost"], "fifoCost": Decimal(0),
            "tax": True, "tax1Rate": rate, "tax2Rate": Decimal(0), "isLayaway": layaway, "isWorkorder": False,
            "isSpecialOrder": False, "displayableSubtotal": subtotal - discount, "displayableUnitPrice": price,
            "calcLineDiscount": discount, "calcTransactionDiscount": Decimal(0),
            "calcTotal": subtotal - discount + tax, "calcSubtotal": subtotal, "calcTax1": tax, "calcTax2": Decimal(0),
            "taxClassID": 1, "customerID": 0, "discountID": 0, "employeeID": 0, "itemID": item_id, "noteID": 0,
            "parentSaleLineID": 0, "taxCategoryID": 1, "itemFeeID": 0, "lineType": "",
            "_parent": None, "_tax": tax, "_discount": discount}


def _finish_sale(sale: dict[str, Any]) -> None:
    lines = sale["SaleLines"]
    subtotal = sum((ln["calcSubtotal"] for ln in lines), Decimal(0))
    discount = sum((ln["_discount"] for ln in lines), Decimal(0))
    tax = cents(sum((ln["_tax"] for ln in lines), Decimal(0)))
    total = subtotal - discount + tax
    sale.update({"calcSubtotal": subtotal, "calcDiscount": discount, "calcTax1": tax, "calcTax2": Decimal(0),
                 "taxTotal": tax, "calcTotal": total, "total": total, "displayableTotal": total,
                 "displayableSubtotal": subtotal - discount, "calcTaxable": subtotal - discount,
                 "calcNonTaxable": Decimal(0)})


def _generate_sales(
    ds: Dataset,
    rng: random.Random,
    staff_by_shop: dict[int, list[int]],
    customers_of_person: dict[int, list[int]],
    history_start: datetime,
    sales_per_day: float,
    years: int,
) -> None:
    truth = ds.truth
    anchor = ds.now
    item_ids = list(ds.items)
    events: list[dict[str, Any]] = []
    first_day = history_start + timedelta(days=3)  # clear of the window edge whatever the clock says
    last_moment = anchor - timedelta(hours=2)
    days = max(1, (last_moment - first_day).days)
    # A few sales older than the history window: a backfill must leave them out.
    old_sales = max(1, int(len(ds.shops) * sales_per_day * 2))
    person_ids = list(customers_of_person)
    plan: list[tuple[int, datetime, bool]] = []
    for shop_id in ds.shops:
        expected = sales_per_day * days
        count = max(1, int(rng.gauss(expected, expected ** 0.5 / 2)))
        for _ in range(count):
            moment = first_day + timedelta(seconds=rng.uniform(0, (last_moment - first_day).total_seconds()))
            plan.append((shop_id, moment, True))
    for _ in range(old_sales):
        moment = history_start - timedelta(days=rng.uniform(20, 200))
        plan.append((rng.choice(list(ds.shops)), moment, False))
    plan.sort(key=lambda p: p[1])

    for shop_id, moment, in_window in plan:
        tz = ZoneInfo(ds.shops[shop_id]["timeZone"])
        local = moment.astimezone(tz)
        # Shops trade 10:00-19:00 local: fold the moment into opening hours.
        moment = local.replace(hour=10 + local.hour % 9).astimezone(UTC)
        moment = min(moment, last_moment)
        rate = ds.shops[shop_id]["_tax_rate"]
        roll = rng.random()
        ecom = roll < 0.08 and shop_id == 1
        walk_in = not ecom and (rng.random() < 0.35 or not person_ids)
        customer = 0
        if not walk_in and person_ids:
            person = rng.choice(person_ids)
            customer = rng.choice(customers_of_person[person])
        kind = "completed"
        r = rng.random()
        if not ecom:
            if r < 0.02:
                kind = "voided"
            elif r < 0.04:
                kind = "layaway"
            elif r < 0.05:
                kind = "quote"
            elif r < 0.055:
                kind = "abandoned"
        employee = rng.choice(staff_by_shop[shop_id]) if staff_by_shop[shop_id] and not ecom else 0
        lines = []
        for _ in range(1 if rng.random() < 0.75 else rng.randint(2, 3)):
            item = rng.choice(item_ids)
            qty = 2 if rng.random() < 0.05 else 1
            pct = Decimal("0.1") if rng.random() < 0.1 else Decimal(0)
            lines.append(_line(ds, rng, item, qty, rate, pct, kind == "layaway"))
        completed = kind in ("completed", "voided")
        sale = {
            "createTime": moment - timedelta(minutes=rng.randint(2, 40)),
            "timeStamp": moment, "updatetime": moment,
            "completeTime": moment if completed else None,
            "discountPercent": Decimal(0), "completed": completed, "archived": kind == "abandoned",
            "voided": kind == "voided", "enablePromotions": True, "isTaxInclusive": False,
            "referenceNumber": f"#{rng.randint(1000, 99999)}" if ecom else "",
            "referenceNumberSource": rng.choice(ECOM_SOURCES) if ecom else "",
            "tax1Rate": rate, "tax2Rate": Decimal(0), "change": Decimal(0), "tipEnabled": False,
            "receiptPreference": "printed", "customerID": customer, "discountID": 0, "employeeID": employee,
            "tipEmployeeID": 0, "quoteID": rng.randint(1, 9999) if kind == "quote" else 0,
            "registerID": shop_id, "shipToID": 0, "shopID": shop_id, "taxCategoryID": shop_id,
            "SaleLines": lines, "_kind": kind, "_in_window": in_window, "_ecom": ecom,
        }
        for ln in lines:
            ln["employeeID"] = employee
            ln["shopID"] = shop_id
            ln["createTime"] = sale["createTime"]
            ln["timeStamp"] = moment
            if kind == "layaway":
                ln["customerID"] = customer
        _finish_sale(sale)
        if kind == "voided":
            voided_at = moment + timedelta(minutes=rng.randint(5, 240))
            sale["timeStamp"] = sale["updatetime"] = min(voided_at, last_moment)
        events.append(sale)
        # A later return of some pieces of a completed sale: its own sale, negative lines -> parent lines.
        if kind == "completed" and in_window and rng.random() < 0.06:
            when = moment + timedelta(days=rng.uniform(1, 30))
            if when < last_moment:
                refund_lines = []
                for parent in lines[: rng.randint(1, len(lines))]:
                    qty = -parent["unitQuantity"]
                    ln = _line(ds, rng, parent["itemID"], qty, rate, parent["discountPercent"], False)
                    ln.update({"_parent": parent, "employeeID": employee, "shopID": shop_id, "createTime": when,
                               "timeStamp": when})
                    refund_lines.append(ln)
                refund = {**{k: v for k, v in sale.items() if not k.startswith("_")},
                          "createTime": when - timedelta(minutes=5), "timeStamp": when, "updatetime": when,
                          "completeTime": when, "referenceNumber": "", "referenceNumberSource": "",
                          "SaleLines": refund_lines, "_kind": "refund", "_in_window": True, "_ecom": False,
                          "completed": True, "voided": False, "archived": False}
                _finish_sale(refund)
                events.append(refund)

    events.sort(key=lambda s: s["createTime"])
    line_id = 0
    for sale_id, sale in enumerate(events, start=1):
        sale["saleID"] = sale_id
        sale["ticketNumber"] = f"22{sale_id:010d}"
        for ln in sale["SaleLines"]:
            line_id += 1
            ln["saleLineID"] = line_id
            ln["saleID"] = sale_id
        ds.sales[sale_id] = sale
    for sale in events:
        for ln in sale["SaleLines"]:
            if ln["_parent"] is not None:
                ln["parentSaleLineID"] = ln["_parent"]["saleLineID"]

    for sale in events:
        if not sale["_in_window"]:
            truth.sales_before_window += 1
            continue
        truth.sales += 1
        truth.sale_lines += len(sale["SaleLines"])
        kind = sale["_kind"]
        total = to_minor(sale["calcTotal"])
        if kind in ("completed", "refund"):
            truth.completed += 1
            truth.completed_total_minor += total
            truth.completed_tax_minor += to_minor(sale["calcTax1"])
            if sale["customerID"] == 0:
                truth.completed_walk_ins += 1
        if kind == "refund":
            truth.refund_sales += 1
            truth.refund_total_minor += total
            truth.refund_lines += len(sale["SaleLines"])
        elif kind == "voided":
            truth.voided += 1
        elif kind == "abandoned":
            truth.abandoned += 1
        elif kind == "layaway":
            truth.layaway += 1
        elif kind == "quote":
            truth.quote += 1
        if sale["_ecom"]:
            truth.ecom += 1
        if sale["customerID"] == 0:
            truth.walk_ins += 1
    truth.currency = ds.currency
    _ = years
