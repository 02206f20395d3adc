"""The base of curate: the record schema, its I/O, format converters and the bundled model path.

Imports nothing of ours but :mod:`curate.errors`; every other package builds on it. The schema's
public names are re-exported here, so ``from curate.records import make_record`` works.
"""

from curate.records.schema import (
    RECORD_KEYS,
    ROLES,
    assistant_text,
    make_record,
    normalize_text,
    record_id,
    user_text,
    validate_record,
)

__all__ = ["RECORD_KEYS", "ROLES", "assistant_text", "make_record", "normalize_text", "record_id", "user_text",
           "validate_record"]
