"""The service tests use the exports' archive of the fixture week."""

from pos_exports_tests.exports.conftest import archived_root  # noqa: F401 (fixture)
