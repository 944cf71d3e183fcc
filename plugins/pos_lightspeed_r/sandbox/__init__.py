"""The Lightspeed R-Series sandbox (see app.py)."""
