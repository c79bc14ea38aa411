"""The redaction helpers hide every password, also in malformed URLs and in drivers' free text."""

from __future__ import annotations

import pytest

from pos_exports.delivery.email import SmtpSettings
from pos_exports.redact import needs_encoding, redact_url, scrub
from pos_exports.source.database import PosSourceError, parse_url
from pos_exports.state import StateDatabaseError, engine

SECRET = "Kx9Tq2#Wm4Rz8/Pv6Lb3?Hn5Jd7"
PARTS = ("Kx9Tq2", "Wm4Rz8", "Pv6Lb3", "Hn5Jd7")
ENCODED = "Kx9Tq2%23Wm4Rz8%2FPv6Lb3%3FHn5Jd7"


def assert_hidden(text: str) -> None:
    assert not [p for p in PARTS if p in text], text


@pytest.mark.parametrize(
    ("url", "shown", "malformed"),
    [
        # well-formed: the password goes, everything else stays
        (f"postgresql://pos_ro:{ENCODED}@db.example:5432/pos", "postgresql://pos_ro:***@db.example:5432/pos", False),
        ("smtps://user:Kx9Tq2Wm@mail.example:465?timeout=5", "smtps://user:***@mail.example:465?timeout=5", False),
        (
            "smtp://u:Kx9Tq2@mail.example:25?from=exports@example.com",
            "smtp://u:***@mail.example:25?from=exports@example.com",
            False,
        ),
        ("postgresql://u:Kx9Tq2@/pos?host=/run/pg", "postgresql://u:***@/pos?host=/run/pg", False),
        # unencoded # / ? @ in the password: a plain URL parser would split inside it and echo the rest
        (f"postgresql://pos_ro:{SECRET}@db.example:5432/pos", "postgresql://pos_ro:***@db.example:5432/pos", True),
        ("postgresql://u:Kx9Tq2/Wm4Rz8@db.example/pos", "postgresql://u:***@db.example/pos", True),
        ("postgresql://u:1234#Wm4Rz8@db.example/pos", "postgresql://u:***@db.example/pos", True),
        (
            "smtp://u:Kx9Tq2?Wm4Rz8@mail.example:25?from=a@example.com",
            "smtp://u:***@mail.example:25?from=a@example.com",
            True,
        ),
        ("smtp://u:Kx9Tq2@Wm4Rz8/Pv6Lb3@mail.example:25", "smtp://u:***@mail.example:25", True),
        ("postgresql://pos_ro:/Kx9Tq2@db.example/pos", "postgresql://pos_ro:***@db.example/pos", True),
        # a user:password whose host was forgotten, and a value that is no URL at all
        ("postgresql://pos_ro:Kx9Tq2Wm/pos", "postgresql://pos_ro:***", False),
        ("Kx9Tq2Wm4Rz8", "***", False),
    ],
)
def test_redact_url_hides_the_password_of_well_formed_and_malformed_urls(url, shown, malformed):
    assert redact_url(url) == shown
    assert needs_encoding(url) is malformed


@pytest.mark.parametrize(
    "url",
    ["sqlite:////srv/a@b/pos.db", "postgresql://pos_ro@db.example/pos", "smtp://mail.example:25?from=a@b.example"],
)
def test_urls_without_a_password_are_left_alone(url):
    assert redact_url(url) == url and not needs_encoding(url)


def test_scrub_hides_urls_key_values_and_the_secrets_of_the_environment(monkeypatch):
    monkeypatch.setenv("POS_DATABASE_URL", f"postgresql://pos_ro:{SECRET}@db.example/pos")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "AwS3cr3tK3yValue")
    text = scrub(
        f"could not parse 'postgresql://x:{ENCODED}@h/db': fragment '{SECRET[7:]}'\n"
        f"dsn: host=h password={SECRET[:6]} port=1; {{'aws_secret_access_key': 'AwS3cr3tK3yValue'}} "
        f"decoded {SECRET} encoded {ENCODED} key AwS3cr3tK3yValue"
    )
    assert_hidden(text)
    assert "AwS3cr3tK3yValue" not in text
    assert "host=h" in text and "postgresql://x:***@h/db" in text


@pytest.mark.parametrize("url", [f"postgresql://pos_ro:{SECRET}@db.example:5432/pos", "postgresql://u:a%zz@h/db"])
def test_pos_url_with_an_unencoded_password_says_so_without_showing_it(url):
    with pytest.raises(PosSourceError, match="must be percent-encoded") as err:
        parse_url(url)
    assert_hidden(str(err.value))
    assert "POS_DATABASE_URL" in str(err.value) and "a%zz" not in str(err.value)


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://pos_ro:{SECRET}x/pos",  # no host: urlsplit reads the password as a port
        f"mysql://pos_ro:{SECRET}@db.example/pos",
        f"pos_ro:{ENCODED}@db.example/pos",
    ],
)
def test_other_bad_pos_urls_never_show_the_password(url):
    with pytest.raises(PosSourceError) as err:
        parse_url(url)
    assert_hidden(str(err.value))


@pytest.mark.parametrize("password", [SECRET, "Kx9Tq2%Wm4Rz8"])
def test_smtp_url_with_an_unencoded_password_says_so_without_showing_it(password):
    with pytest.raises(ValueError, match="must be percent-encoded") as err:
        SmtpSettings.from_url(f"smtp://user:{password}@mail.example:25?from=exports@example.com")
    assert "POS_EXPORTS_SMTP_URL" in str(err.value)
    assert_hidden(str(err.value))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (f"postgresql://pos_ro:{SECRET}@127.0.0.1:1/state", "must be percent-encoded"),
        (f"postgresql://pos_ro:{ENCODED}@127.0.0.1:notaport/state", "not a usable SQLAlchemy URL"),
        (f"nosuchdialect://pos_ro:{ENCODED}@127.0.0.1/state", "not a usable SQLAlchemy URL"),
        (f"{ENCODED}", "not a usable SQLAlchemy URL"),
        (f"postgresql://pos_ro:{ENCODED}@127.0.0.1:1/state?connect_timeout=2", "cannot use the state database"),
    ],
)
def test_state_url_errors_never_show_the_password(url, message):
    with pytest.raises(StateDatabaseError, match=message) as err:
        engine(url)
    assert_hidden(str(err.value))


def test_the_database_url_reaches_dagster_by_name_only(monkeypatch):
    import dagster as dg

    from pos_exports import config
    from pos_exports.definitions import build_defs

    monkeypatch.setenv("POS_DATABASE_URL", f"postgresql://pos_ro:{ENCODED}@db.example/pos")
    url = build_defs().resources["pos_database"].url
    assert isinstance(url, dg.EnvVar) and url.env_var_name == "POS_DATABASE_URL"
    monkeypatch.delenv("POS_DATABASE_URL")
    assert build_defs().resources["pos_database"].url == config.database_url()  # the demo default holds no secret
