"""Lightspeed Retail R-Series POS connector."""
