"""Unified client identity: one client per person across every location and connector.

Deterministic resolution (external id, normalised email, E.164 phone), union-find clusters walked
in SQL from the changed records only, a stop-list of junk values, a cluster-size cap, per-field
survivorship with provenance, and merges that can be undone exactly. The rules are the
``IdentitySettings`` stored in ``app_setting`` under ``identity``.
"""

from core.identity.clusters import resolve_existing
from core.identity.duplicates import DuplicateGroup, duplicates_report
from core.identity.ingest import ClientIngestResult, ingest_clients, load_stop_list, resolve_location_region
from core.identity.merge import MergeError, merge_clients, unmerge
from core.identity.settings import IdentitySettings, load_identity_settings, save_identity_settings
from core.identity.survivorship import FIELDS as SURVIVING_FIELDS
from core.identity.survivorship import manual_provenance

__all__ = [
    "SURVIVING_FIELDS",
    "ClientIngestResult",
    "DuplicateGroup",
    "IdentitySettings",
    "MergeError",
    "duplicates_report",
    "ingest_clients",
    "load_identity_settings",
    "load_stop_list",
    "manual_provenance",
    "merge_clients",
    "resolve_existing",
    "resolve_location_region",
    "save_identity_settings",
    "unmerge",
]
