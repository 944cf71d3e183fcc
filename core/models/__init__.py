"""The unified schema. Importing this package registers every table on ``metadata``."""

from core.models.base import UTCDateTime, metadata, utcnow
from core.models.catalog import Product, ProductImage
from core.models.clients import Client, ClientContact, ClientMerge, Consent, ExternalRef
from core.models.connectors import Checkpoint, Connector, SyncError, SyncRun
from core.models.feed import AuditLog, ChangeFeed, FeedConsumer
from core.models.org import ApiToken, Associate, Location, User, UserLocation, WebSession
from core.models.outreach import Attribution, Automation, Outreach, Task
from core.models.sales import Sale, SaleLine
from core.models.settings import AppSetting

__all__ = [
    "ApiToken",
    "AppSetting",
    "Associate",
    "Attribution",
    "AuditLog",
    "Automation",
    "ChangeFeed",
    "Checkpoint",
    "Client",
    "ClientContact",
    "ClientMerge",
    "Connector",
    "Consent",
    "ExternalRef",
    "FeedConsumer",
    "Location",
    "Outreach",
    "Product",
    "ProductImage",
    "Sale",
    "SaleLine",
    "SyncError",
    "SyncRun",
    "Task",
    "UTCDateTime",
    "User",
    "UserLocation",
    "WebSession",
    "metadata",
    "utcnow",
]
