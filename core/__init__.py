"""Clasp: a self-hostable clienteling hub."""

__version__ = "0.1.0"
