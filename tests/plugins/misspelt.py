"""A plugin with a typo in its hook name: check_pending must catch it."""

from core.plugin import hookimpl


@hookimpl
def clasp_register_conector_types(register):  # type: ignore[no-untyped-def]
    raise AssertionError("never called")
