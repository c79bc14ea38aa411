"""Filter names, types and messages (docs/reports.md)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pos_exports.reports import BUILDERS, FILTERS, validate_filters


def test_filters_per_dataset():
    assert set(BUILDERS) == {"sales", "customers", "inventory", "audit_log"}
    assert FILTERS["sales"] == {}
    assert list(FILTERS["customers"]) == [
        "customer_type",
        "credit_status",
        "min_outstanding_balance",
        "is_active",
    ]
    assert list(FILTERS["inventory"]) == [
        "storefront_id",
        "category",
        "stock_status",
        "min_quantity",
        "exclude_zero_value",
        "include_movement_history",
    ]
    assert list(FILTERS["audit_log"]) == ["event_type", "user_id", "sale_id", "customer_id"]


def test_values_are_converted():
    assert validate_filters("customers", {"min_outstanding_balance": "100", "is_active": "yes"}) == {
        "min_outstanding_balance": Decimal("100.00"),
        "is_active": True,
    }
    assert validate_filters("customers", {"customer_type": " Wholesale "}) == {"customer_type": "wholesale"}
    assert validate_filters("inventory", {"storefront_id": "12", "exclude_zero_value": False, "category": None}) == {
        "storefront_id": 12,
        "exclude_zero_value": False,
    }
    assert validate_filters("audit_log", {"event_type": "a_brand_new_type", "sale_id": 7}) == {
        "event_type": "a_brand_new_type",
        "sale_id": 7,
    }
    assert validate_filters("sales", None) == {}


def test_messages_name_the_field_and_the_allowed_values():
    with pytest.raises(
        ValueError, match=r"'colour' is not a filter of the inventory export \(allowed: storefront_id, "
    ):
        validate_filters("inventory", {"colour": "red"})
    with pytest.raises(ValueError, match=r"customer_type of customers: 'vip' .*one of retail, wholesale"):
        validate_filters("customers", {"customer_type": "vip"})
    with pytest.raises(ValueError, match=r"min_outstanding_balance.*'lots'.*an amount"):
        validate_filters("customers", {"min_outstanding_balance": "lots"})
    with pytest.raises(ValueError, match=r"is_active.*'maybe'.*true or false"):
        validate_filters("customers", {"is_active": "maybe"})
    with pytest.raises(ValueError, match=r"user_id.*True"):
        validate_filters("audit_log", {"user_id": True})
    with pytest.raises(ValueError, match="takes no filters"):
        validate_filters("sales", {"storefront_id": 1})
    with pytest.raises(ValueError, match="unknown dataset"):
        validate_filters("payroll", {})
