"""The POS's own HTTP API over the state database and storage (`pos-exports serve`; docs/api.md)."""
