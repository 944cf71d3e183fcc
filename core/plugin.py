"""The public plugin API: the only module of ``core`` a plugin may import.

It holds the hook marker, the base classes of every object a plugin registers (connector types and
their stage objects, automation types, attribution models, jobs, admin contributions, sandboxes),
the normalised record types that streams produce, and small HTTP helpers.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, ClassVar, Literal, Protocol

import httpx
import pluggy
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

hookimpl = pluggy.HookimplMarker("clasp")

ConnectorKind = Literal["pos", "messaging", "catalog", "crm"]
CAPABILITIES = frozenset({"oauth", "webhooks", "writeback", "sync", "send", "push", "catalog"})

__all__ = [
    "CAPABILITIES",
    "RETRYABLE_STATUS",
    "AdminPage",
    "AssociateRecord",
    "AttributionModel",
    "AutomationAction",
    "AutomationSettings",
    "AutomationType",
    "CheckResult",
    "ClientDateField",
    "ClientPanel",
    "ClientRecord",
    "ClientWrite",
    "ConnectorContext",
    "ConnectorKind",
    "ConnectorSettings",
    "ConnectorType",
    "ConsentEvidence",
    "ContactRecord",
    "Credit",
    "DeliveryState",
    "InboundMessage",
    "Job",
    "LocationRecord",
    "NavItem",
    "OAuthFlow",
    "OccasionQuery",
    "Occasions",
    "OutboundMessage",
    "Page",
    "PermanentError",
    "PluginError",
    "ProductRecord",
    "PushItem",
    "PushOutcome",
    "Pusher",
    "RecipientProblem",
    "SaleFacts",
    "SaleLineRecord",
    "SaleRecord",
    "Sandbox",
    "SecretStr",
    "SendResult",
    "Sender",
    "StatusEvent",
    "Stream",
    "TaskKind",
    "Touch",
    "TouchKind",
    "TransientError",
    "WebhookReply",
    "WebhookRequest",
    "WriteResult",
    "Writer",
    "hookimpl",
    "http_client",
    "request_with_retries",
]


# --------------------------------------------------------------------------------------------- errors


class PluginError(Exception):
    """Base class for errors a plugin raises on purpose; the message is shown to people as-is."""


class TransientError(PluginError):
    """Worth retrying later (rate limit, 5xx, network). ``retry_after`` is seconds, when known."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(PluginError):
    """Retrying the same input will fail the same way (bad credentials, invalid record, ...)."""


# ------------------------------------------------------------------------------------------- settings


class ConnectorSettings(BaseModel):
    """Base for a connector type's settings model.

    Fields typed ``SecretStr`` are secrets: stored Fernet-encrypted, write-only in the panel, shown
    masked by ``clasp connector show``. Field ``title``/``description`` become form labels and help.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @classmethod
    def secret_fields(cls) -> set[str]:
        secret: set[str] = set()
        for name, info in cls.model_fields.items():
            annotation = info.annotation
            if annotation is SecretStr or SecretStr in getattr(annotation, "__args__", ()):
                secret.add(name)
        return secret


@dataclass
class CheckResult:
    ok: bool
    message: str
    details: dict[str, Any] = field(default_factory=dict)


class ConnectorContext(Protocol):
    """What a connector's stage objects get to know about the configured connector they serve."""

    connector_id: int
    name: str
    settings: Any  # an instance of the connector type's settings_model
    base_url: str  # Clasp's public URL (for OAuth callbacks and webhooks)

    async def save_settings(self, **updates: Any) -> None:
        """Persist changed settings (e.g. rotated OAuth tokens) atomically, secrets encrypted."""
        ...


# ------------------------------------------------------------------------------------------- records


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")

    external_id: str = Field(min_length=1, max_length=255)
    # When the source last changed the record; used for cursors and field-level last-writer-wins.
    updated_at: datetime | None = None


class LocationRecord(_Record):
    name: str
    timezone: str = "UTC"
    currency: str = Field(default="USD", min_length=3, max_length=3)
    country: str = Field(default="US", min_length=2, max_length=2)
    phone: str | None = None


class AssociateRecord(_Record):
    first_name: str = ""
    last_name: str = ""
    email: str | None = None
    location_external_id: str | None = None
    active: bool = True


class ContactRecord(BaseModel):
    kind: Literal["email", "phone"]
    value: str
    label: str | None = None
    is_primary: bool = False


class ConsentEvidence(BaseModel):
    """What the source system says about one kind of permission, for ``ClientRecord.consent``.

    A plugin turns its own flags and fields into evidence under a policy its connector settings make
    explicit (which flag or field means which channel and purpose, how a "do not contact" default
    reads); the engine appends a consent-ledger row (source kind ``pos_flag``) only when a record's
    evidence for a channel and purpose differs from what this connector said last time, so re-syncing
    unchanged data writes nothing. ``status``:

    - ``opted_in``: the client gave permission (e.g. a ticked "Text me" field);
    - ``opted_out``: the client refused or withdrew it;
    - ``unknown``: the system grants no permission (e.g. Lightspeed's default ``noEmail=true`` on a
      new customer). It withdraws an opt-in this connector gave earlier, but never erases consent a
      person recorded in Clasp; with no earlier row from the connector it records nothing.

    ``source`` names the flag or field ("Contact.noEmail", "custom field Text Opt-In"); ``wording``
    is the wording the store shows when collecting it, as stated in the policy. ``overrides_opt_out``
    lets this opt-in lift an opt-out recorded in Clasp (in store, import) — never a STOP text.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: Literal["sms", "email", "call", "mail"]
    purpose: Literal["marketing", "transactional"] = "marketing"
    status: Literal["opted_in", "opted_out", "unknown"]
    source: str = Field(min_length=1, max_length=100)
    wording: str | None = None
    overrides_opt_out: bool = False


class ClientRecord(_Record):
    first_name: str = ""
    last_name: str = ""
    contacts: list[ContactRecord] = Field(default_factory=list)
    birthday: date | None = None
    anniversary: date | None = None
    address: dict[str, Any] = Field(default_factory=dict)
    note: str | None = None
    custom_fields: dict[str, Any] = Field(default_factory=dict)
    home_location_external_id: str | None = None
    archived: bool = False
    # Consent evidence read from the source (see ConsentEvidence); empty: the source says nothing.
    consent: list[ConsentEvidence] = Field(default_factory=list)

    @field_validator("birthday", "anniversary", mode="before")
    @classmethod
    def _calendar_date(cls, value: Any) -> date | None:
        # A date of birth sent as a timestamp ("1980-05-16T20:00:00-04:00" is UTC midnight of May 17)
        # names a calendar day; it must never shift by a day with the offset it was written in.
        from core.normalize import parse_date

        return parse_date(value)


class ProductRecord(_Record):
    sku: str | None = None
    name: str = ""
    vendor: str | None = None
    category: str | None = None
    description: str | None = None
    price_minor: int | None = None
    currency: str | None = None
    image_urls: list[str] = Field(default_factory=list)
    image_missing: bool = False
    archived: bool = False


class SaleLineRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    external_id: str
    product_external_id: str | None = None
    sku: str | None = None
    name: str = ""
    quantity: int = 1  # negative for a returned piece
    unit_price_minor: int = 0
    total_minor: int = 0
    parent_line_external_id: str | None = None  # the line a return refunds


class SaleRecord(_Record):
    location_external_id: str
    associate_external_id: str | None = None
    client_external_id: str | None = None  # None: a walk-in sale
    channel: Literal["store", "ecom"] = "store"
    status: Literal["completed", "voided", "layaway", "quote", "open"]
    currency: str = Field(min_length=3, max_length=3)
    subtotal_minor: int = 0
    tax_minor: int = 0
    total_minor: int = 0
    occurred_at: datetime
    lines: list[SaleLineRecord] = Field(default_factory=list)


@dataclass
class Page:
    """One page of raw payloads from a stream, and the checkpoint state that follows them.

    ``records`` are the source's raw payloads (dicts); the engine passes each through
    :meth:`Stream.decode`, so a payload that fails to decode lands in the error queue as it came and
    can be replayed after a fix. ``state`` is saved in the same transaction as the page's records.
    """

    records: list[dict[str, Any]]
    state: dict[str, Any]
    progress: float | None = None  # 0..1 when the stream can estimate how far a backfill is


# -------------------------------------------------------------------------------------- stage objects


class Stream:
    """A source of one record type, read page by page from a checkpoint.

    Subclasses set ``name`` (unique within the connector type), ``object_type`` (``location``,
    ``associate``, ``client``, ``product`` or ``sale``) and implement :meth:`read` and :meth:`decode`.
    Streams are read in the order the connector type lists them, so list locations before the
    records that reference them.
    """

    name: ClassVar[str]
    object_type: ClassVar[str]
    # The payload key holding the record's id, so a payload that fails to decode can still be named
    # in the error queue (and replaced there when a corrected copy arrives).
    primary_key: ClassVar[str | None] = None

    def read(self, state: Mapping[str, Any], *, full: bool = False) -> AsyncIterator[Page]:
        """Yield pages after ``state`` (the last saved checkpoint, ``{}`` on the first run).

        ``full=True`` asks for a backfill from the beginning of the history window. Compare cursors
        with ``>=``: the engine de-duplicates at the boundary by external id. To catch edits that
        commit late at the source, start an incremental read a little before the checkpoint (a
        look-back window; make it a setting): re-read records are recognised and cost nothing.

        The engine reads one page ahead in its own task while it stores the previous one, so keep
        per-read state local to the generator. A :class:`TransientError` raised here is retried
        from the last committed checkpoint; any other exception fails the stream (committed pages
        stay).
        """
        raise NotImplementedError

    def decode(self, payload: Mapping[str, Any]) -> _Record:
        """Turn one raw payload into a record type; raise ``ValueError``/``PermanentError`` if invalid."""
        raise NotImplementedError


@dataclass
class ClientWrite:
    """A client edit made in Clasp, to be written to the external system."""

    client_id: int
    external_id: str | None
    changes: dict[str, Any]
    changed_at: datetime
    feed_id: int


@dataclass
class WriteResult:
    ok: bool
    external_id: str | None = None
    message: str = ""
    remote_updated_at: datetime | None = None


class Writer:
    """Writes client edits made in Clasp back to the external system (the writeback stage)."""

    async def write(self, change: ClientWrite) -> WriteResult:
        raise NotImplementedError


@dataclass
class OutboundMessage:
    outreach_id: int
    to: str
    body: str
    media_urls: list[str] = field(default_factory=list)
    status_callback: str | None = None
    # Unique per outreach row; providers that accept an idempotency key get this one.
    idempotency_key: str = ""
    # When this send attempt began (the outbox claim). ``Sender.lookup`` ignores provider messages
    # created before it, so an older text with the same body is never mistaken for this one.
    not_before: datetime | None = None


# What a provider's answer says about the recipient, whatever the provider calls it (Twilio 21610 is
# "opted_out", 21211/21614 are "unusable"). Core records it: a consent opt-out, or the number marked
# unusable, so no messaging plugin ever texts that recipient again by mistake.
RecipientProblem = Literal["opted_out", "unusable"]


@dataclass
class SendResult:
    """The provider's answer to one send.

    ``state``: ``sent`` (accepted), ``delivered``, ``failed``/``undelivered`` (refused for good, with
    ``error_code``), or ``unknown`` when the request may or may not have reached the provider (a
    timeout after the request was written): core then reconciles with :meth:`Sender.lookup` and
    never re-sends blindly. Raise :class:`TransientError` only when the provider certainly did
    *not* accept the message (HTTP 429, 5xx, connection refused): core retries it with backoff.
    """

    state: Literal["sent", "delivered", "failed", "undelivered", "unknown"]
    provider_id: str | None = None
    error_code: str | None = None
    message: str = ""
    recipient: RecipientProblem | None = None
    # The provider's own status word ("queued", "accepted", ...), kept for display and ordering.
    provider_status: str | None = None


@dataclass
class WebhookRequest:
    """A provider's webhook call as Clasp received it, for :class:`Sender` to verify and parse.

    ``url`` is the *public* URL the provider called (Clasp's ``base_url`` + path + query), which is
    what providers sign, not the internal address the request arrived on behind a proxy.
    """

    method: str
    url: str
    headers: Mapping[str, str]  # lower-case names
    params: list[tuple[str, str]]  # form fields (POST) or query parameters (GET), repeats kept
    body: bytes = b""

    def first(self, name: str, default: str | None = None) -> str | None:
        for key, value in self.params:
            if key == name:
                return value
        return default

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.params if key == name]


@dataclass
class WebhookReply:
    """What to answer a provider's webhook with (e.g. TwiML for Twilio)."""

    body: str = ""
    media_type: str = "text/plain"
    status_code: int = 200


# Delivery states from the provider, normalised and ordered: a status never moves backwards.
DeliveryState = Literal["queued", "sending", "sent", "delivered", "undelivered", "failed", "read"]


@dataclass
class StatusEvent:
    """A delivery-status report for one message (a provider's status callback)."""

    provider_id: str
    state: DeliveryState
    provider_status: str  # the provider's own word, stored as is
    error_code: str | None = None
    recipient: RecipientProblem | None = None
    occurred_at: datetime | None = None


@dataclass
class InboundMessage:
    """A message a person sent to one of the provider's numbers."""

    provider_id: str
    from_address: str  # E.164 for SMS/MMS
    to_address: str
    body: str = ""
    media_urls: list[str] = field(default_factory=list)
    received_at: datetime | None = None


class Sender:
    """Sends messages through a messaging provider (the messaging stage) and reads its webhooks.

    Core calls :meth:`send` once per attempt, and attempts again only after the provider certainly
    refused (:class:`TransientError`); an unclear outcome is settled with :meth:`lookup`, never by
    sending again. Webhooks arrive at ``<base_url>/webhooks/<type>/<connector id>/status`` and
    ``.../inbound``; core answers 403 unless :meth:`verify_webhook` says the request is genuine.
    """

    async def send(self, message: OutboundMessage) -> SendResult:
        raise NotImplementedError

    async def lookup(self, message: OutboundMessage) -> SendResult | None:
        """Find out whether an earlier attempt reached the provider (after a crash); None if unknown."""
        return None

    def verify_webhook(self, request: WebhookRequest) -> bool:
        """True when the request really comes from the provider (signature check). Default: reject."""
        return False

    def parse_status(self, request: WebhookRequest) -> StatusEvent | None:
        """The status report in a verified status webhook; None if it carries none."""
        return None

    def parse_inbound(self, request: WebhookRequest) -> InboundMessage | None:
        """The message in a verified inbound webhook; None if it carries none."""
        return None

    def inbound_reply(self, text: str | None) -> WebhookReply:
        """The webhook answer that sends ``text`` back to the person (nothing when None)."""
        return WebhookReply()


@dataclass
class PushItem:
    entity: str
    entity_id: int
    data: dict[str, Any]
    feed_id: int


@dataclass
class PushOutcome:
    item: PushItem
    ok: bool
    external_id: str | None = None
    error: str | None = None
    retryable: bool = False


class Pusher:
    """Pushes unified records to a CRM (the CRM stage)."""

    async def push(self, items: Sequence[PushItem]) -> list[PushOutcome]:
        raise NotImplementedError


class OAuthFlow:
    """The OAuth 2 authorization-code flow of a connector type (the panel's one-click authorize)."""

    def authorize_url(self, *, state: str, redirect_uri: str, code_challenge: str) -> str:
        raise NotImplementedError

    async def exchange(self, *, code: str, redirect_uri: str, code_verifier: str) -> dict[str, Any]:
        """Exchange the code; return the settings to store (tokens, discovered account ids, ...)."""
        raise NotImplementedError


class ConnectorType:
    """A kind of external system Clasp can connect to. Subclass it and register an instance."""

    name: ClassVar[str]
    kind: ClassVar[ConnectorKind]
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""
    settings_model: ClassVar[type[ConnectorSettings]] = ConnectorSettings
    capabilities: ClassVar[frozenset[str]] = frozenset()

    async def check(self, ctx: ConnectorContext) -> CheckResult:
        """Test the connection with these settings ("test connection" in the panel)."""
        return CheckResult(ok=True, message="no check implemented")

    def streams(self, ctx: ConnectorContext) -> list[Stream]:
        """Sync streams, in the order they must run (locations before what references them)."""
        return []

    def writer(self, ctx: ConnectorContext) -> Writer | None:
        return None

    def sender(self, ctx: ConnectorContext) -> Sender | None:
        return None

    def pusher(self, ctx: ConnectorContext) -> Pusher | None:
        return None

    def oauth(self, ctx: ConnectorContext) -> OAuthFlow | None:
        return None

    def sync_interval_seconds(self, ctx: ConnectorContext) -> int:
        """How often the scheduler starts an incremental sync for a connector of this type."""
        return int(getattr(ctx.settings, "poll_interval_seconds", 300))


AutomationAction = Literal["send", "task"]
TaskKind = Literal["call", "text", "email", "visit", "other"]
ClientDateField = Literal["birthday", "anniversary"]


class AutomationSettings(BaseModel):
    """Base for an automation type's settings model (the panel renders its form from the fields).

    Give every field a default, a ``title`` and a ``description``: an automation is created from the
    defaults, disabled, and an admin changes single fields (``clasp automations configure NAME --set
    KEY=VALUE``). Settings common to every automation — the action, the location scope and the
    message template — live on the automation itself, not here.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Occasions:
    """A set of due occasions, described as SQL by core; opaque to plugins.

    Built only by :class:`OccasionQuery` methods. Combine sets with ``|`` (an automation may look for
    several kinds of occasion). Core evaluates the set in the database in one pass: it never loads a
    table into Python, and the same description serves the dry run and the real run.
    """

    def __or__(self, other: Occasions) -> Occasions:
        raise NotImplementedError


class OccasionQuery(Protocol):
    """The building blocks an :class:`AutomationType` describes its due occasions with.

    Every block returns the occasions due at ``now`` that have not fired yet for this automation,
    looking back at most ``catch_up`` (so a worker that was down catches up, and enabling an
    automation never floods clients with years of past occasions). ``occasion`` names the occasion;
    core makes the key ``a<automation>:c<client>:<occasion>:<detail>`` unique in the outbox and the
    task list, so an occasion fires at most once, however often or concurrently evaluation runs.

    Core applies what every automation shares: merged and archived clients are left out, the
    automation's location scope is applied to the occasion's location (the client's home location;
    for sale and piece occasions the sale's location), and the action (text or task) is carried out
    with the automation's template.
    """

    now: datetime  # timezone-aware UTC

    def client_date(
        self, field: ClientDateField, *, at: time, occasion: str, catch_up: timedelta = timedelta(0)
    ) -> Occasions:
        """Clients whose ``field`` (month and day) is today in their local time, once ``at`` has passed.

        Local time is the client's home location's timezone (the automations default timezone for a
        client without one). A Feb 29 date falls on Feb 28 in other years. The detail is the local
        year, so the occasion comes back every year. ``catch_up`` lets a late evaluation still fire
        for a day that has just ended (default: the same local day only).
        """
        ...

    def after_sale(self, *, delay: timedelta, catch_up: timedelta, occasion: str) -> Occasions:
        """Completed sales to a known client, due ``delay`` after the sale (one occasion per sale).

        Walk-in sales (no client), refunds and sales containing returned pieces, and sales with a
        total of zero or less are never occasions. The template gets the sale as ``sale``.
        """
        ...

    def piece_anniversaries(
        self, *, every_months: Mapping[str, int], catch_up: timedelta, occasion: str, max_years: int = 10
    ) -> Occasions:
        """Pieces bought (sale lines) whose product category is a key of ``every_months``
        (case-insensitive), due every that many months after the purchase (one occasion per piece and
        period). Returned pieces are left out. The template gets the piece as ``product``, its sale
        as ``sale`` and the period number as ``occasion.number``.
        """
        ...

    def dormant(self, *, days: int, catch_up: timedelta, occasion: str) -> Occasions:
        """Clients whose latest purchase at *any* location is ``days`` old (one occasion per dormancy:
        a new purchase starts the clock again). The template gets that purchase as ``sale``."""
        ...

    def nothing(self) -> Occasions:
        """The empty set (for a type whose settings turn it off)."""
        ...


class AutomationType:
    """An outreach occasion (birthday, thank-you, ...). Subclass it and register an instance.

    Set ``name`` (unique, stable: it names the automation and its occasion keys), ``title``,
    ``settings_model`` (a subclass of :class:`AutomationSettings`), ``default_template`` (sandboxed
    Jinja2; variables ``client``, ``associate``, ``location``, ``last_purchase``, ``sale``,
    ``product``, ``occasion``; an unknown variable is an error, never an empty gap), and implement
    :meth:`occasions`. ``default_action`` is what a new automation of this type does: ``send`` a text
    through the outbox (marketing: consent, quiet hours and the frequency cap apply) or create a
    ``task`` on the owning associate's Today page, titled by ``task_title`` (a template too).
    """

    name: ClassVar[str]
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""
    settings_model: ClassVar[type[BaseModel]] = AutomationSettings
    default_template: ClassVar[str] = ""
    default_action: ClassVar[AutomationAction] = "task"
    task_kind: ClassVar[TaskKind] = "text"
    task_title: ClassVar[str] = "{{ client.first_name }} {{ client.last_name }}"

    def occasions(self, query: OccasionQuery, settings: Any) -> Occasions:
        """The occasions due at ``query.now``, built from ``query``'s blocks; ``settings`` is an
        instance of ``settings_model``. Called once per evaluation; do no I/O here."""
        raise NotImplementedError


TouchKind = Literal["outreach", "task"]


@dataclass(frozen=True)
class Touch:
    """One contact with a client that may earn credit for a sale.

    ``kind="outreach"``: an outbound text or email the provider reported delivered; ``at`` is when
    it was delivered. ``kind="task"``: a Today task of kind call or text that an associate marked
    done; ``at`` is when. ``location_id`` is the store the touch came from, which may differ from
    the store of the sale (cross-store credit). ``replied_at`` is the client's first inbound
    message after this touch and no later than the next touch or the sale, else ``None``.
    """

    kind: TouchKind
    id: int
    at: datetime
    channel: str
    associate_id: int | None
    location_id: int | None
    automated: bool = False
    replied_at: datetime | None = None


@dataclass(frozen=True)
class SaleFacts:
    """The sale being credited. ``revenue_minor`` is net: its own pre-tax line totals less every
    refund of those lines so far (refunds rung up later, at any store, included)."""

    id: int
    client_id: int
    location_id: int
    occurred_at: datetime
    revenue_minor: int
    currency: str


@dataclass(frozen=True)
class Credit:
    """A share of one sale for one touch; a model's weights for a sale must be positive and sum
    to 1 (Clasp splits the revenue by them to the minor unit, so the shares add up exactly)."""

    touch: Touch
    weight: float = 1.0


class AttributionModel:
    """Decides which touches earn credit for a sale. Subclass it and register an instance.

    Set ``name`` (unique and stable: stored on every credit row and used in report links) and
    ``title``, and implement :meth:`credit`. Clasp calls it for every completed sale of a known
    client whose net revenue is positive, whenever the sale, a refund of it, the client's identity
    or an earlier touch changes, and replaces that model's credit rows for the sale with the
    result. Every registered model is computed; the reports show one at a time (the
    ``attribution`` settings choose the default).
    """

    name: ClassVar[str]
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def credit(self, sale: SaleFacts, touches: Sequence[Touch]) -> list[Credit]:
        """The credit for ``sale``. ``touches`` holds every touch to the sale's unified client, from
        any location, within the attribution window before the sale (``at`` <= the sale's time),
        newest first. Return ``[]`` to give no credit. Pure: no I/O, and the same answer for the
        same input (it is re-run whenever late data arrives)."""
        raise NotImplementedError


# ------------------------------------------------------------------------------ jobs, admin, sandboxes

JobFunction = Callable[..., Awaitable[Any]]


@dataclass
class Job:
    """A background job. ``cron`` takes arq's cron keywords, e.g. ``{"minute": {0, 30}}``."""

    name: str
    function: JobFunction
    cron: dict[str, Any] | None = None
    run_at_startup: bool = False
    timeout_seconds: int = 3600


@dataclass
class NavItem:
    label: str
    href: str
    roles: frozenset[str] = frozenset({"owner", "manager", "associate"})
    order: int = 100


@dataclass
class AdminPage:
    """Litestar route handlers mounted in the admin panel (behind sign-in and CSRF)."""

    name: str
    route_handlers: list[Any]
    template_dirs: list[str] = field(default_factory=list)


@dataclass
class ClientPanel:
    """A block on a client's profile page. ``render`` returns HTML (it may be async)."""

    name: str
    title: str
    render: Callable[..., Any]
    order: int = 100


@dataclass
class Sandbox:
    """A fake of an external API. ``app_factory(**options)`` returns an ASGI app."""

    name: str
    app_factory: Callable[..., Any]
    description: str = ""
    # Connector type this sandbox stands in for, and how to configure one against it:
    # ``connector_settings(sandbox_url)`` returns the settings of a connector talking to it.
    connector_type: str | None = None
    connector_settings: Callable[[str], dict[str, Any]] | None = None


# ---------------------------------------------------------------------------------------------- http

USER_AGENT = "clasp-hub (+https://github.com/clasp-hub/clasp)"


def http_client(base_url: str = "", *, timeout: float = 30.0, **kwargs: Any) -> httpx.AsyncClient:
    """An httpx client with sane timeouts and Clasp's user agent."""
    headers = {"User-Agent": USER_AGENT, **kwargs.pop("headers", {})}
    return httpx.AsyncClient(base_url=base_url, timeout=timeout, headers=headers, **kwargs)


RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


async def request_with_retries(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    attempts: int = 5,
    base_delay: float = 0.5,
    max_delay: float = 30.0,
    **kwargs: Any,
) -> httpx.Response:
    """Send a request, retrying 429/5xx, timeouts and dropped connections with jittered backoff.

    ``Retry-After`` is obeyed when the server sends it. The last response (or error) is returned
    (raised) when attempts run out; callers decide what a final 4xx/5xx means.
    """
    for attempt in range(1, attempts + 1):
        try:
            response = await client.request(method, url, **kwargs)
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError):
            if attempt == attempts:
                raise
            await asyncio.sleep(_backoff(attempt, base_delay, max_delay))
            continue
        if response.status_code not in RETRYABLE_STATUS or attempt == attempts:
            return response
        await asyncio.sleep(_retry_after(response) or _backoff(attempt, base_delay, max_delay))
    raise AssertionError("unreachable")


def _backoff(attempt: int, base: float, cap: float) -> float:
    # "Full jitter": spreads retries of many workers instead of synchronising them.
    return random.uniform(0, min(cap, base * 2 ** (attempt - 1)))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
