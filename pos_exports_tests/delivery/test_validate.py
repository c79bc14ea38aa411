"""`validate`: user input becomes a Subscription, or is refused with a message naming the field."""

from __future__ import annotations

import pytest

from pos_exports.delivery.subscriptions import (
    DEFAULT_MESSAGE,
    DEFAULT_SUBJECT,
    SubscriptionError,
    check_address,
    filters_for,
    validate,
    validate_settings,
)

ZONES = {1: "Africa/Accra", 2: "America/New_York", 3: "Asia/Tokyo", 4: "Europe/Warsaw", 5: "Asia/Dubai"}


def weekly(**changes) -> dict:
    data = {
        "business_id": 2,
        "name": "Weekly summary",
        "datasets": ["sales", "customers"],
        "formats": ["xlsx", "pdf"],
        "frequency": "weekly",
        "day_of_week": "monday",
        "at": "07:00",
        "recipients": ["owner@bodega.example"],
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not ...}


def test_a_valid_weekly_subscription_is_normalised():
    sub = validate(
        weekly(day_of_week="Mon", datasets=["sales", "customers", "sales"], formats="xlsx"), business_timezones=ZONES
    )
    assert sub.id is None and sub.business_id == 2 and sub.name == "Weekly summary"
    assert sub.datasets == ["sales", "customers"]  # duplicates dropped, order kept
    assert sub.formats == ["xlsx"]
    assert (sub.frequency, sub.hour, sub.minute, sub.day_of_week) == ("weekly", 7, 0, 0)
    assert sub.day_of_month is None and sub.nth_weekday is None and sub.timezone is None
    assert sub.subject_template == DEFAULT_SUBJECT and sub.message_template == DEFAULT_MESSAGE
    assert sub.filters == {} and sub.only_if_data is False and sub.is_active is True
    assert sub.when == "weekly on monday at 07:00"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"day_of_week": 6}, 6),
        ({"day_of_week": "3"}, 3),
        ({"day_of_week": "SUNDAY"}, 6),
        ({"day_of_week": "tues"}, 1),
        ({"day_of_week": "thu"}, 3),
    ],
)
def test_weekdays_by_number_or_name(changes, expected):
    assert validate(weekly(**changes)).day_of_week == expected


def test_monthly_forms_and_time_forms():
    last = validate(weekly(frequency="monthly", day_of_week=None, day_of_month="LAST", at=None, hour="18", minute=5))
    assert (last.day_of_month, last.nth_weekday, last.hour, last.minute) == ("last", None, 18, 5)
    assert last.when == "monthly on the last day at 18:05"
    assert validate(weekly(frequency="monthly", day_of_week=None, day_of_month=28)).day_of_month == "28"
    nth = validate(weekly(frequency="monthly", day_of_week=None, nth_weekday=" Second  Tue "))
    assert nth.nth_weekday == "2nd tuesday" and nth.when == "monthly on the 2nd tuesday at 07:00"
    assert (
        validate(weekly(frequency="monthly", day_of_week=None, nth_weekday="last Friday")).nth_weekday == "last friday"
    )
    daily = validate(weekly(frequency="daily", day_of_week=None, at=None, hour=23))
    assert (daily.hour, daily.minute, daily.when) == (23, 0, "daily at 23:00")


def test_recipients_filters_templates_and_flags():
    sub = validate(
        weekly(
            recipients=["Owner@Bodega.example", "owner@bodega.example", "o'brien+exports@mail.bodega.example"],
            filters={"customer_type": "Wholesale", "min_outstanding_balance": "100.5", "is_active": "yes"},
            subject_template="{business_name} / {period_key} / {frequency} {{literal}}",
            message_template="Line 1\r\nLine 2 {subscription_name} {timezone}\n",
            timezone="Asia/Tokyo",
            only_if_data="true",
            is_active=False,
        )
    )
    assert sub.recipients == ["Owner@Bodega.example", "o'brien+exports@mail.bodega.example"]
    assert sub.filters == {"customer_type": "wholesale", "is_active": True, "min_outstanding_balance": "100.50"}
    assert filters_for(sub, "customers") == sub.filters and filters_for(sub, "sales") == {}
    assert sub.timezone == "Asia/Tokyo" and sub.only_if_data is True and sub.is_active is False
    assert sub.message_template.startswith("Line 1\r\nLine 2")


def test_filters_may_be_grouped_by_dataset():
    sub = validate(
        weekly(
            datasets=["inventory", "audit_log"],
            filters={"inventory": {"stock_status": "low_stock", "storefront_id": "3"}, "event_type": "sale.completed"},
        )
    )
    assert sub.filters == {"event_type": "sale.completed", "stock_status": "low_stock", "storefront_id": 3}


def test_round_trip_through_to_input():
    sub = validate(weekly(filters={"credit_status": "blocked"}, timezone="Europe/Warsaw"))
    assert validate(sub.to_input()) == sub


INVALID = [
    # (changes, field, text in the message)
    ({"business_id": 0}, "business_id", "out of range"),
    ({"business_id": "two"}, "business_id", "not a whole number"),
    ({"business_id": 99}, "business_id", "no business with id 99"),
    ({"name": ""}, "name", "must not be empty"),
    ({"name": "x" * 101}, "name", "at most 100"),
    ({"name": "Weekly\nBcc: x@y.com"}, "name", "line break"),
    ({"datasets": []}, "datasets", "at least one"),
    ({"datasets": ["sales", "payroll"]}, "datasets", "'payroll' is not one of"),
    ({"formats": ["docx"]}, "formats", "'docx' is not one of"),
    ({"frequency": "hourly"}, "frequency", "'hourly' is not one of"),
    ({"at": "24:00"}, "at", "not a time of day"),
    ({"at": 420}, "at", "quoted string"),
    ({"at": None, "hour": 7, "minute": 60}, "minute", "out of range"),
    ({"at": None, "hour": -1}, "hour", "out of range"),
    ({"day_of_week": None}, "day_of_week", "required for a weekly"),
    ({"day_of_week": 7}, "day_of_week", "not a weekday"),
    ({"day_of_week": "someday"}, "day_of_week", "not a weekday"),
    ({"frequency": "daily"}, "day_of_week", "does not apply to a daily"),
    ({"day_of_month": 5}, "day_of_month", "does not apply to a weekly"),
    ({"frequency": "monthly", "day_of_week": None}, "day_of_month", "needs day_of_month"),
    ({"frequency": "monthly", "day_of_week": None, "day_of_month": 29}, "day_of_month", "29 is not allowed"),
    ({"frequency": "monthly", "day_of_week": None, "day_of_month": 0}, "day_of_month", "0 is not allowed"),
    (
        {"frequency": "monthly", "day_of_week": None, "day_of_month": 1, "nth_weekday": "1st monday"},
        "day_of_month",
        "not both",
    ),
    ({"frequency": "monthly", "day_of_week": None, "nth_weekday": "5th monday"}, "nth_weekday", "5th"),
    ({"frequency": "monthly", "day_of_week": None, "nth_weekday": "2nd funday"}, "nth_weekday", "not valid"),
    ({"timezone": "Mars/Olympus_Mons"}, "timezone", "not an IANA time zone"),
    ({"timezone": "../../etc/passwd"}, "timezone", "not an IANA time zone"),
    ({"recipients": []}, "recipients", "at least one"),
    ({"recipients": ["bob@@x"]}, "recipients", "'bob@@x' is not a valid email address"),
    ({"recipients": ["owner@bodega.example\r\nBcc: x@y"]}, "recipients", "line break"),
    ({"recipients": ["a@b.com, c@d.com"]}, "recipients", "one address per entry"),
    ({"recipients": ["a@b.com;c@d.com"]}, "recipients", "one address per entry"),
    ({"recipients": ["Name <a@b.com>"]}, "recipients", "display name"),
    ({"recipients": ["<a@b.com>"]}, "recipients", "display name"),
    ({"recipients": ["a@b.com (comment)"]}, "recipients", "display name"),
    ({"recipients": ["a@b"]}, "recipients", "'a@b' is not a valid email address"),
    ({"recipients": ["a..b@c.com"]}, "recipients", "not a valid email address"),
    ({"subject_template": "Export\nBcc: x@y.com"}, "subject_template", "line break"),
    ({"subject_template": "{business_name} {password}"}, "subject_template", "unknown placeholder {password}"),
    ({"subject_template": "{business_name.__class__}"}, "subject_template", "unknown placeholder"),
    ({"subject_template": "{period_label:>999999}"}, "subject_template", "no format"),
    ({"subject_template": "{}"}, "subject_template", "unknown placeholder {}"),
    ({"message_template": "Hello {business_name"}, "message_template", "unmatched"),
    ({"message_template": "Hello {owner_name}"}, "message_template", "unknown placeholder {owner_name}"),
    ({"filters": {"colour": "red"}}, "filters", "unknown filter 'colour'"),
    ({"filters": {"stock_status": "low_stock"}}, "filters", "'stock_status' filters the inventory dataset"),
    ({"filters": {"customer_type": "vip"}}, "filters", "customer_type: 'vip' is not one of retail, wholesale"),
    ({"filters": {"min_outstanding_balance": "-1"}}, "filters", "at least 0"),
    ({"filters": {"min_outstanding_balance": "1.005"}}, "filters", "2 decimal places"),
    ({"filters": {"customers": {"event_type": "x"}}}, "filters", "unknown filter 'event_type' of the customers"),
    ({"only_if_data": "maybe"}, "only_if_data", "not true or false"),
    ({"is_active": 2}, "is_active", "not true or false"),
    ({"colour": "red"}, "colour", "unknown field"),
]


@pytest.mark.parametrize(("changes", "field", "text"), INVALID, ids=[f"{c[1]}-{i}" for i, c in enumerate(INVALID)])
def test_invalid_input_is_refused_naming_the_field(changes, field, text):
    with pytest.raises(SubscriptionError) as caught:
        validate(weekly(**changes), business_timezones=ZONES)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    assert text in str(caught.value)


def test_the_error_message_reads_well():
    with pytest.raises(SubscriptionError) as caught:
        validate(weekly(recipients=["ok@shop.example", "bob@@x"]))
    assert str(caught.value) == "recipients: 'bob@@x' is not a valid email address"


def test_the_business_is_checked_only_when_zones_are_known():
    assert validate(weekly(business_id=99)).business_id == 99


@pytest.mark.parametrize("address", ["owner@kofi-shop.example", "a.b-c_d+e@sub.domain.co.uk", "x@xn--p1ai.xn--p1ai"])
def test_plain_addresses_pass(address):
    assert check_address("to", address) == address


def test_notification_settings_validation():
    settings = validate_settings({"business_id": 2})
    assert (settings.notify_success, settings.notify_failure, settings.from_name) == (False, True, "POS Exports")
    assert settings.default_recipients == [] and settings.reply_to is None
    full = validate_settings(
        {
            "business_id": "2",
            "notify_success": "yes",
            "default_recipients": ["a@shop.example"],
            "failure_recipients": "it@shop.example",
            "from_name": "Bodega exports",
            "reply_to": "owner@shop.example",
        }
    )
    assert full.business_id == 2 and full.notify_success and full.failure_recipients == ["it@shop.example"]
    for data, field in [
        ({"from_name": "Exports\r\nBcc: x@y.com"}, "from_name"),
        ({"from_name": "Evil <x@y.com>"}, "from_name"),
        ({"reply_to": "a@b.com, c@d.com"}, "reply_to"),
        ({"default_recipients": ["nope"]}, "default_recipients"),
        ({"notify_failure": "sometimes"}, "notify_failure"),
        ({"smtp_password": "x"}, "smtp_password"),
    ]:
        with pytest.raises(SubscriptionError) as caught:
            validate_settings({"business_id": 2, **data})
        assert caught.value.field == field, data


def test_the_input_models_are_strict_and_list_the_allowed_values():
    """The models behind `validate` refuse unknown fields and declare their choices as enums (what a form or the
    Launchpad shows), from the catalogue."""
    from pos_exports.core.catalog import DATASETS, FORMATS, FREQUENCIES
    from pos_exports.delivery.subscriptions import INPUT_FIELDS, SettingsInput, SubscriptionInput

    assert SubscriptionInput.model_config["extra"] == "forbid" and SubscriptionInput.model_config["strict"]
    assert SettingsInput.model_config["extra"] == "forbid" and SettingsInput.model_config["strict"]
    schema = SubscriptionInput.model_json_schema()["properties"]
    assert schema["frequency"]["enum"] == list(FREQUENCIES)
    assert schema["datasets"]["items"]["enum"] == list(DATASETS)
    assert schema["formats"]["items"]["enum"] == list(FORMATS)
    assert INPUT_FIELDS[:5] == ("business_id", "name", "datasets", "formats", "frequency")


@pytest.mark.parametrize(
    ("dataset", "name", "value", "message"),
    [
        ("inventory", "storefront_id", "0", "0 is out of range (must be at least 1)"),
        ("customers", "min_outstanding_balance", "1.005", "'1.005' has more than 2 decimal places"),
        ("customers", "min_outstanding_balance", "-5", "'-5' must be an amount of at least 0"),
        ("audit_log", "event_type", "a\nb", "'a\\nb' must not contain a line break (CR or LF)"),
        ("customers", "credit_status", "late", "'late' is not one of good, near_limit, over_limit, blocked"),
    ],
)
def test_one_filter_model_per_dataset_for_subscriptions_and_exports(dataset, name, value, message):
    """A subscription's filter and an on-demand export's are checked by the same model, with the same words."""
    from pos_exports.reports.filters import validate_filters

    with pytest.raises(SubscriptionError) as caught:
        validate(weekly(datasets=[dataset], filters={name: value}))
    assert str(caught.value) == f"filters: {name}: {message}"
    with pytest.raises(ValueError) as refused:
        validate_filters(dataset, {name: value})
    assert str(refused.value) == f"filter {name} of {dataset}: {message}"
