"""The identity rules an admin can change: which keys match, create vs update, source priority, caps.

Stored as JSON in ``app_setting`` under the key ``identity``; a missing or partial row means the
defaults below. The admin panel renders its form from this model, so every field documents itself.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlmodel.ext.asyncio.session import AsyncSession

from core import app_settings

SETTING_KEY = "identity"
MatchKey = Literal["email", "phone"]


class IdentitySettings(BaseModel):
    """How records from different POS locations and connectors are recognised as one client."""

    model_config = ConfigDict(extra="ignore")

    match_keys: list[MatchKey] = Field(
        default_factory=lambda: ["email", "phone"],
        title="Match on",
        description=(
            "Contact values that identify the same person across locations and connectors. A new record "
            "sharing one of these (after normalisation: lower-case email, E.164 phone) with an existing "
            "client is that client. The POS's own id always matches its own record. Empty: never match."
        ),
    )
    on_match: Literal["update", "create"] = Field(
        default="update",
        title="When a record matches an existing client",
        description=(
            "update: attach the record to the matching client and merge clients it links together "
            "(every merge can be undone). create: always create a new client; matches only appear in "
            "the duplicates report for a person to merge by hand."
        ),
    )
    source_priority: list[str] = Field(
        default_factory=list,
        title="Source priority",
        description=(
            'Connectors whose values win when sources disagree, best first: connector ids ("3" or '
            '"connector:3") or connector types ("lightspeed_r"). Unlisted connectors rank after the '
            "listed ones; among equals the most recently updated value wins. Edits made in Clasp rank "
            "with the best source, so the most recent of the two wins."
        ),
    )
    cluster_size_cap: int = Field(
        default=10,
        ge=2,
        le=1000,
        title="Largest automatic merge",
        description=(
            "The most source records one client may gather by automatic matching. A match that would "
            "make a bigger cluster is not merged (a shared family email or a shop's default phone is "
            "the usual cause); it is listed in the duplicates report instead."
        ),
    )
    junk_emails: list[str] = Field(
        default_factory=list,
        title="More placeholder emails",
        description=(
            "Addresses staff type when a client has none (the shop's own address, say), in addition to "
            "the built-in list (noemail@…, none@none.com, test@test.com, n/a …). Never used to match, "
            "never messaged."
        ),
    )
    junk_phones: list[str] = Field(
        default_factory=list,
        title="More placeholder phones",
        description=(
            "Numbers never used to match or text, in addition to every location's phone and the "
            "built-in list (000-000-0000, 555-555-5555, 123-456-7890 …). Written in any format."
        ),
    )
    default_region: str = Field(
        default="US",
        min_length=2,
        max_length=2,
        title="Default phone country",
        description=(
            "Country (ISO 3166 code) for national phone numbers of a record whose location is unknown; "
            "otherwise the record's location's country is used."
        ),
    )

    @field_validator("default_region")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @field_validator("source_priority")
    @classmethod
    def _strip(cls, value: list[str]) -> list[str]:
        return [str(v).strip() for v in value if str(v).strip()]

    def rank_of(self, connector_id: int | None, connector_type: str | None) -> int:
        """Lower is better. Non-connector sources (edits in Clasp) rank with the best source."""
        if connector_id is None:
            return 0
        for index, entry in enumerate(self.source_priority):
            if entry in (str(connector_id), f"connector:{connector_id}") or entry == connector_type:
                return index
        return len(self.source_priority)


async def load_identity_settings(session: AsyncSession) -> IdentitySettings:
    return IdentitySettings.model_validate(await app_settings.read(session, SETTING_KEY))


async def save_identity_settings(session: AsyncSession, settings: IdentitySettings) -> None:
    """Store the settings (validated); takes effect for the next page ingested."""
    value = IdentitySettings.model_validate(settings.model_dump()).model_dump(mode="json")
    await app_settings.write(session, SETTING_KEY, value)
