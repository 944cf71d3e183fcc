"""A test POS: a small fake POS API (``fake``) and a connector type that reads it over HTTP (``plugin``)."""
