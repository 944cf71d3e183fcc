"""Twilio SMS/MMS messaging connector."""
