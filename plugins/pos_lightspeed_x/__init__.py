"""Lightspeed Retail X-Series (ex-Vend) POS connector."""
