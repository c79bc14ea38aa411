"""Delivery: subscriptions, email, and the ledger that makes each export go out once."""
