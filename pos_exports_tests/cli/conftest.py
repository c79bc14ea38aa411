"""The CLI tests use the operations' fixtures (archives, a state database, the ledger's clock)."""

from pos_exports_tests.operations.conftest import (  # noqa: F401 (fixtures)
    archive_copy,
    archived_root,
    base_archive,
    clock,
    marker_archive,
    state,
)
