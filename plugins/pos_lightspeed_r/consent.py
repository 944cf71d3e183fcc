"""Lightspeed R consent evidence, under the connector's stated policy (``LightspeedRSettings.consent_*``).

What R-Series knows, and how the default policy reads it:

- ``Contact.noEmail`` / ``noPhone`` / ``noMail``: "do not contact by email / phone / post". Lightspeed
  sets all three to ``"true"`` on every new customer (changelog 2018.12), so a set flag usually means
  only that nobody asked: by default it reads as **no permission** (status ``unknown``: withdraws an
  opt-in Lightspeed gave before, never erases one recorded in Clasp). A shop whose staff set the flags
  only when a client refuses picks ``opt_out``. An unset flag (``"false"``) is an opt-in to
  **promotions** on that channel (email, phone calls, post).
- ``noPhone`` is about calls: it is **not** consent to texts, which US law (TCPA) wants given
  expressly. Text consent comes from a custom field (default "Text Opt-In", a checkbox): ticked is an
  opt-in to promotional texts, unticked or empty is no permission.
- A "Wants Catalog" custom field ticked is an opt-in to promotions by post.
- By default a Lightspeed opt-in does not lift an opt-out recorded in Clasp (in store, import);
  ``consent_overrides_opt_out`` allows it. Nothing from the POS ever lifts a STOP text.

The evidence carries the wording the policy states for each source (``consent_*_wording``), since the
POS cannot tell what the client was shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.plugin import ConsentEvidence

from .quirks import flag

TRUTHY = ("true", "1", "yes", "y", "on", "x", "checked")


@dataclass(frozen=True)
class ConsentPolicy:
    enabled: bool = True
    flag_set_means: str = "no_permission"  # or "opt_out"
    read_flags: bool = True
    sms_field: str = "Text Opt-In"
    catalog_field: str = "Wants Catalog"
    flag_wording: str | None = None
    sms_wording: str | None = None
    overrides_opt_out: bool = False

    @classmethod
    def from_settings(cls, settings: Any) -> ConsentPolicy:
        return cls(
            enabled=bool(getattr(settings, "consent_from_pos", True)),
            flag_set_means=str(getattr(settings, "consent_flag_set_means", "no_permission")),
            read_flags=bool(getattr(settings, "consent_read_flags", True)),
            sms_field=str(getattr(settings, "consent_sms_field", "") or ""),
            catalog_field=str(getattr(settings, "consent_catalog_field", "") or ""),
            flag_wording=getattr(settings, "consent_flag_wording", None) or None,
            sms_wording=getattr(settings, "consent_sms_wording", None) or None,
            overrides_opt_out=bool(getattr(settings, "consent_overrides_opt_out", False)),
        )

    def evidence(self, contact: Mapping[str, Any], custom: Mapping[str, Any]) -> list[ConsentEvidence]:
        """The consent evidence of one customer (its Contact and decoded custom fields)."""
        if not self.enabled:
            return []
        out: list[ConsentEvidence] = []
        refused = "opted_out" if self.flag_set_means == "opt_out" else "unknown"
        if self.read_flags:
            for key, channel in (("noEmail", "email"), ("noPhone", "call"), ("noMail", "mail")):
                if key not in contact:
                    continue
                out.append(self._item(channel, refused if flag(contact, key, True) else "opted_in",
                                      f"Contact.{key}", self.flag_wording))
        for name, channel, wording in ((self.sms_field, "sms", self.sms_wording),
                                       (self.catalog_field, "mail", self.flag_wording)):
            if not name:
                continue
            value = next((v for k, v in custom.items() if k.casefold() == name.casefold()), None)
            ticked = isinstance(value, str) and value.strip().lower() in TRUTHY
            if channel == "mail" and not ticked:
                continue  # no catalog request: noMail alone speaks for post
            out.append(self._item(channel, "opted_in" if ticked else "unknown", f"custom field {name}"[:100], wording))
        # Two sources for one channel (noMail and the catalog field): an opt-in from either wins.
        merged: dict[tuple[str, str], ConsentEvidence] = {}
        for item in out:
            key = (item.channel, item.purpose)
            if key not in merged or item.status == "opted_in":
                merged[key] = item
        return list(merged.values())

    def _item(self, channel: str, status: str, source: str, wording: str | None) -> ConsentEvidence:
        return ConsentEvidence(
            channel=channel,  # type: ignore[arg-type]
            purpose="marketing",
            status=status,  # type: ignore[arg-type]
            source=source,
            wording=wording if status == "opted_in" else None,
            overrides_opt_out=self.overrides_opt_out and status == "opted_in",
        )
