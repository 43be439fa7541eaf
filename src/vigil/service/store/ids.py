"""The range of the store's row ids, so that callers can refuse an id no row can have."""

from __future__ import annotations

from typing import Final

# Row ids are signed 64-bit integers in both stores (PostgreSQL BIGINT, SQLite INTEGER); a larger
# value cannot even be bound as a query parameter, so it must be refused before it reaches the store.
MIN_ROW_ID: Final = 1
MAX_ROW_ID: Final = 2**63 - 1
