"""Twilio error codes and what they mean for Clasp (shared/api/salesforce_twilio.md, B4)."""

from __future__ import annotations

from core.plugin import RecipientProblem

# Synchronous API errors (HTTP 400 on create) and asynchronous DLR codes (status callbacks).
RECIPIENT_PROBLEMS: dict[str, RecipientProblem] = {
    "21610": "opted_out",  # the recipient texted STOP to this sender
    "21211": "unusable",  # invalid 'To' number
    "21614": "unusable",  # 'To' is not a mobile number (landline or invalid)
    "30005": "unusable",  # unknown destination handset / no longer in service
    "30006": "unusable",  # landline or unreachable carrier
}

MESSAGES = {
    "20003": "Twilio rejected the account SID / auth token",
    "20429": "too many concurrent requests to Twilio",
    "21211": "the number is not a valid phone number",
    "21408": "texting this region is not enabled on the Twilio account",
    "21606": "the From number cannot send texts (not a message-capable number of this account)",
    "21610": "the recipient has opted out (replied STOP) — Twilio refuses to text them",
    "21611": "the From number's Twilio queue is full; slow down",
    "21612": "the number cannot be reached by SMS/MMS from this sender",
    "21614": "the number is not a mobile number",
    "21617": "the message body is too long (over 1,600 characters)",
    "30003": "unreachable handset (off or out of coverage)",
    "30005": "unknown handset or number no longer in service",
    "30006": "landline or unreachable carrier",
    "30007": "filtered by the carrier as spam",
    "30034": "US A2P 10DLC: the sending number is not registered",
}


def describe(code: str | None, fallback: str = "") -> str:
    if code is None:
        return fallback or "Twilio error"
    known = MESSAGES.get(code)
    return (
        f"Twilio {code}: {known}"
        if known
        else f"Twilio {code}: {fallback or 'see https://www.twilio.com/docs/errors/' + code}"
    )
