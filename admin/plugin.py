"""Registers the admin panel with the web app (filled in by the admin panel work)."""
