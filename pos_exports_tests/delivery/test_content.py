"""Rendering, header safety, SMTP URL parsing and outbox mode (no SMTP server needed)."""

from __future__ import annotations

from email import message_from_bytes, policy

import pytest

from pos_exports.core.clock import utc_now
from pos_exports.delivery.email import (
    Attachment,
    EmailHeaderError,
    SmtpSettings,
    build_message,
    check_address,
    fill_template,
    mask,
    render_content,
    send,
)
from pos_exports_tests.delivery.samples import CONTEXT, content_for, make_files

MB = 1024 * 1024


def test_templates_fill_known_keys_only():
    ctx = dict(CONTEXT)
    assert (
        fill_template("{business_name} / {period_key} / {datasets}", ctx)
        == "Café Zürich & Sons / 2025-03 / sales, customers"
    )
    # unknown keys, attribute access, format specs, conversions and stray braces stay literal and never raise
    assert fill_template("{unknown} {business_name.__class__} {period_key:>99999} {period_key!r} {", ctx) == (
        "{unknown} {business_name.__class__} {period_key:>99999} {period_key!r} {"
    )
    assert fill_template("{{period_key}} {{{period_key}}}", ctx) == "{period_key} {2025-03}"
    assert fill_template("{secret}", {**ctx, "secret": "x"}) == "{secret}"


def test_render_content_bodies(tmp_path):
    files = make_files(tmp_path)
    c = content_for(files, ["a@example.com"])
    assert c.subject == "Café Zürich & Sons: monthly export for March 2025"
    assert not c.link_mode and c.attachments == files
    for needle in (
        "Café Zürich & Sons",
        "March 2025 (Europe/Zurich)",
        "Total sales",
        "1,234.50",
        "sales.xlsx",
        "10.0 KB",
    ):
        assert needle in c.text
    assert "attached are the sales, customers exports" in c.text
    # HTML: every user value escaped
    assert "Café Zürich &amp; Sons" in c.html and "Café Zürich & Sons" not in c.html
    assert "March 2025 (Europe/Zurich)" in c.html and "1,234.50" in c.html and "sales.csv" in c.html
    assert "$" not in c.html.replace("&#x27;", "")  # every template placeholder substituted


def test_html_escapes_hostile_values(tmp_path):
    ctx = {**CONTEXT, "business_name": '<script>alert("x")</script>'}
    evil = Attachment("<img src=x onerror=alert(1)>.csv", None, "javascript:alert(1)", 10, "text/csv")
    c = render_content(
        subject_template="{business_name}",
        message_template="<b>{business_name}</b>",
        context=ctx,
        summary=[("<i>label</i>", "<u>1</u>")],
        files=[evil],
        to=["a@example.com"],
        from_name="x",
        from_address="x@example.com",
        reply_to=None,
    )
    assert "<script>" not in c.html and "<img" not in c.html and "<b>" not in c.html and "<i>" not in c.html
    assert "&lt;script&gt;" in c.html
    assert 'href="javascript' not in c.html  # only http(s) links become anchors


def test_link_mode_above_budget(tmp_path):
    files = [
        Attachment(
            "sales.xlsx",
            tmp_path / "x",
            "https://s3.example/bucket/sales.xlsx?X-Amz-Signature=abc&x=1",
            15 * MB,
            "application/octet-stream",
        ),
        Attachment(
            "sales.pdf", tmp_path / "y", "s3://bucket/exports/42/monthly/2025-03/sales.pdf", 6 * MB, "application/pdf"
        ),
    ]
    c = content_for(files, ["a@example.com"])
    assert c.link_mode and c.attachments == []
    notice = "The files are larger than 20 MB, so they are linked instead of attached"
    assert notice in c.text and notice in c.html
    assert files[0].uri in c.text and files[1].uri in c.text
    assert 'href="https://s3.example/bucket/sales.xlsx?X-Amz-Signature=abc&amp;x=1"' in c.html
    assert files[1].uri in c.html
    msg = build_message(c, now=utc_now())
    assert [p for p in msg.iter_attachments()] == []
    body_types = {p.get_content_type() for p in msg.walk()}
    assert {"text/plain", "text/html"} <= body_types

    under = content_for(make_files(tmp_path), ["a@example.com"], size_budget_bytes=20 * MB)
    assert not under.link_mode


@pytest.mark.parametrize(
    "bad",
    [
        "a@b.com, c@d.com",
        "x@y.com\r\nBcc: evil@z.com",
        "x@y.com\nBcc: evil@z.com",
        "Name <a@b.com>",
        "<a@b.com>",
        '"quoted"@b.com',
        "a@b.com (comment)",
        "a@@b.com",
        "no-at-sign",
        "",
        " a@b.com",
        "a@b.com;c@d.com",
        "ünï@example.com",
    ],
)
def test_bad_recipients_refused(bad, tmp_path):
    with pytest.raises(EmailHeaderError):
        check_address(bad)
    files = make_files(tmp_path)
    with pytest.raises(EmailHeaderError):
        build_message(content_for(files, ["ok@example.com", bad]), now=utc_now())
    good = build_message(content_for(files, ["ok@example.com"]), now=utc_now())
    with pytest.raises(EmailHeaderError):
        send(good, ["ok@example.com", bad], None, tmp_path / "outbox")
    assert not (tmp_path / "outbox").exists()  # refused before anything was written


@pytest.mark.parametrize("field", ["subject", "from_name", "reply_to"])
@pytest.mark.parametrize(
    "evil", ["x\r\nBcc: evil@z.com", "x\nBcc: evil@z.com", "x\rBcc: evil@z.com", "x\u2028Bcc: e@z.com", "x\x00"]
)
def test_line_breaks_in_headers_refused(field, evil, tmp_path):
    c = content_for(make_files(tmp_path), ["a@example.com"])
    setattr(c, field, evil)
    with pytest.raises(EmailHeaderError):
        build_message(c, now=utc_now())


def test_subject_template_with_line_break_refused_but_values_flattened(tmp_path):
    files = make_files(tmp_path)
    with pytest.raises(EmailHeaderError):
        build_message(
            content_for(files, ["a@example.com"], subject_template="Export\r\nBcc: evil@z.com"), now=utc_now()
        )
    c = content_for(files, ["a@example.com"], context={**CONTEXT, "business_name": "Two\r\nLines"})
    assert c.subject.startswith("Two Lines:")
    build_message(c, now=utc_now())


def test_message_headers(tmp_path):
    c = content_for(make_files(tmp_path), ["a@example.com", "b@example.com"])
    msg = build_message(c, now=utc_now())
    parsed = message_from_bytes(msg.as_bytes(), policy=policy.default)
    assert parsed["From"].addresses[0].display_name == "Acme POS, Exports"
    assert parsed["From"].addresses[0].addr_spec == "exports@acme.example"
    assert [a.addr_spec for a in parsed["To"].addresses] == ["a@example.com", "b@example.com"]
    assert parsed["Reply-To"] == "owner@cafe.example"
    assert parsed["Subject"] == c.subject
    assert parsed["Message-ID"].endswith("@acme.example>")
    assert parsed["Date"].datetime.tzinfo is not None
    assert b"\r\n" in msg.as_bytes(policy=policy.SMTP)


def test_outbox_writes_parseable_eml(tmp_path):
    files = make_files(tmp_path)
    msg = build_message(content_for(files, ["a@example.com", "b@example.com"]), now=utc_now())
    results = send(msg, ["a@example.com", "b@example.com"], None, tmp_path / "outbox")
    emls = list((tmp_path / "outbox").iterdir())
    assert len(emls) == 1 and emls[0].suffix == ".eml"  # no temporary file left behind
    assert {r.status for r in results.values()} == {"emailed"}
    assert results["a@example.com"].response == f"written to outbox {emls[0]}"
    assert results["a@example.com"].message_id == msg["Message-ID"]
    parsed = message_from_bytes(emls[0].read_bytes(), policy=policy.default)
    assert parsed["Message-ID"] == msg["Message-ID"]
    attached = {p.get_filename(): p.get_payload(decode=True) for p in parsed.iter_attachments()}
    assert attached == {f.name: f.path.read_bytes() for f in files}


@pytest.mark.parametrize(
    "url, expected",
    [
        ("smtp://mail.example.com", dict(host="mail.example.com", port=25, security="plain", timeout=30.0)),
        ("smtp://u:p@mail.example.com:2525", dict(port=2525, username="u", password="p", security="plain")),
        ("smtp://u:p@mail.example.com:587?starttls=true", dict(port=587, security="starttls")),
        ("smtp+starttls://u:p@mail.example.com", dict(port=587, security="starttls")),
        ("smtps://u:p@mail.example.com", dict(port=465, security="ssl")),
        ("smtps://mail.example.com:2465?timeout=10", dict(port=2465, security="ssl", timeout=10.0)),
        (
            "smtp://user%40example.com:p%40ss%3Aw%2Fo%25rd@mail.example.com:25?from=exports@example.com",
            dict(username="user@example.com", password="p@ss:w/o%rd", from_address="exports@example.com"),
        ),
        ("SMTP://MAIL.example.com", dict(host="mail.example.com", port=25)),
    ],
)
def test_smtp_url_forms(url, expected):
    settings = SmtpSettings.from_url(url)
    for name, value in expected.items():
        assert getattr(settings, name) == value, name


@pytest.mark.parametrize(
    "url, problem",
    [
        ("http://u:s3cret@mail.example.com", "scheme"),
        ("mail.example.com:25", "scheme"),
        ("smtp://u:s3cret@:25", "no host"),
        ("smtp://u:s3cret@mail.example.com:notaport", "port"),
        ("smtp://u:s3cret@mail.example.com:99999", "port"),
        ("smtp://u:s3cret@mail.example.com?timeout=abc", "timeout"),
        ("smtp://u:s3cret@mail.example.com?timeout=0", "timeout"),
        ("smtp://u:s3cret@mail.example.com?timeout=-3", "timeout"),
        ("smtp://u:s3cret@mail.example.com?starttls=maybe", "starttls"),
        ("smtps://u:s3cret@mail.example.com?starttls=true", "starttls"),
        ("smtp://u:s3cret@mail.example.com?tls=1", "unknown option"),
        ("smtp://u:s3cret@mail.example.com?from=Bob%20%3Cb@x.com%3E", "from address"),
        ("smtp://u:s3cret@mail.example.com/path", "path"),
        ("smtp://:s3cret@mail.example.com", "no user name"),
    ],
)
def test_smtp_url_errors_name_the_problem_without_the_password(url, problem):
    with pytest.raises(ValueError) as info:
        SmtpSettings.from_url(url)
    assert problem in str(info.value)
    assert "s3cret" not in str(info.value)


def test_smtp_url_options_are_a_strict_model_with_one_line_errors():
    """The URL's options go through `SmtpOptions` (unknown ones refused, starttls in the project's true/false
    words); each error is one line naming the option and what it accepts, the URL masked."""
    from pos_exports.core.urls import SmtpOptions

    assert SmtpOptions.model_config["extra"] == "forbid" and SmtpOptions.model_config["strict"]
    with pytest.raises(ValueError) as info:
        SmtpSettings.from_url("smtp://u:s3cret@mail.example.com?starttls=maybe")
    assert str(info.value) == (
        "POS_EXPORTS_SMTP_URL: starttls: 'maybe' is not true or false: smtp://u:***@mail.example.com?starttls=maybe"
    )
    with pytest.raises(ValueError) as info:
        SmtpSettings.from_url("smtp://mail.example.com?timeout=0")
    assert str(info.value) == (
        "POS_EXPORTS_SMTP_URL: timeout: '0' is not a positive number of seconds: smtp://mail.example.com?timeout=0"
    )
    assert SmtpSettings.from_url("smtp://mail.example.com?starttls=yes&timeout=2.5").security == "starttls"
    settings = SmtpSettings.from_url("smtp://mail.example.com")
    with pytest.raises(ValueError):  # frozen: settings read once are not changed on the way
        settings.port = 26


def test_password_hidden_from_repr_and_logs():
    url = "smtps://user:s3cr%40t@mail.example.com:465?timeout=5"
    settings = SmtpSettings.from_url(url)
    assert settings.password == "s3cr@t"
    assert "s3cr" not in repr(settings) and "s3cr" not in settings.describe()
    assert mask(url) == "smtps://user:***@mail.example.com:465?timeout=5"
    assert mask("smtp://mail.example.com:25") == "smtp://mail.example.com:25"
    assert "s3cret" not in mask("smtp://u:s3cret@mail.example.com:notaport")


def test_from_env(monkeypatch):
    monkeypatch.delenv("POS_EXPORTS_SMTP_URL", raising=False)
    assert SmtpSettings.from_env() is None
    monkeypatch.setenv("POS_EXPORTS_SMTP_URL", "smtp+starttls://u:p@relay.example.com")
    assert SmtpSettings.from_env().security == "starttls"


def test_attachment_content_types_are_sanitized(tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(b"\x00\x01")
    types = ["text/csv; charset=utf-8", "application/pdf\r\nX-Evil: 1", "nonsense", "", "multipart/mixed", "TEXT/CSV"]
    files = [Attachment(f"f{i}.bin", f, "u", 2, t) for i, t in enumerate(types)]
    msg = build_message(content_for(files, ["a@example.com"]), now=utc_now())
    got = [p.get_content_type() for p in msg.iter_attachments()]
    assert got == ["text/csv"] + ["application/octet-stream"] * 4 + ["text/csv"]
    assert b"X-Evil" not in msg.as_bytes()


@pytest.mark.parametrize(
    ("business", "stored", "original", "ascii_name"),
    [
        (
            "Kofi's Corner Shop",
            "sales.xlsx",
            "Kofi's Corner Shop_sales_2026-11-30.xlsx",
            "kofis-corner-shop_sales_2026-11-30.xlsx",
        ),
        (
            "Café Zürich & Sons",
            "sales-line_items.csv",
            "Café Zürich & Sons_sales-line_items_2026-11-30.csv",
            "cafe-zurich-sons_sales-line_items_2026-11-30.csv",
        ),
        (
            "東京 Shibuya 店",
            "inventory.pdf",
            "東京 Shibuya 店_inventory_2026-11-30.pdf",
            "shibuya_inventory_2026-11-30.pdf",
        ),
    ],
)
def test_attachments_are_named_for_a_downloads_folder(tmp_path, business, stored, original, ascii_name):
    """Business, file and period in the name; ASCII for every client, the original in RFC 2231 (filename*)."""
    from urllib.parse import quote

    from pos_exports.delivery.email import SMTP_POLICY, ascii_filename, mail_filename

    assert mail_filename(business, stored, "2026-11-30") == original
    assert ascii_filename(original) == ascii_name
    (tmp_path / stored).write_bytes(b"data")
    files = [Attachment(original, tmp_path / stored, str(tmp_path / stored), 4, "application/octet-stream")]
    raw = build_message(content_for(files, ["a@example.com"]), now=utc_now()).as_bytes(policy=SMTP_POLICY)
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    [part] = message_from_bytes(raw, policy=policy.default).iter_attachments()
    disposition = str(part.get("Content-Disposition"))
    assert part.get_payload(decode=True) == b"data" and part.get_filename() == ascii_name
    assert f'filename="{ascii_name}"' in raw.decode() and f"filename*=utf-8''{quote(original)}" in raw.decode()
    assert disposition.startswith("attachment")


def test_link_mode_lists_each_csv_file_not_their_zip(tmp_path):
    """Over the size budget nothing is attached: the CSV tables a zip would carry are linked one by one."""
    (tmp_path / "sales.csv.zip").write_bytes(b"PK" + b"x" * 2000)
    zipped = Attachment("shop_sales_2025-03.csv.zip", tmp_path / "sales.csv.zip", "", 2002, "application/zip")
    linked = [
        Attachment(
            f"shop_sales{p}_2025-03.csv", tmp_path / "x", f"https://files.example/sales{p}.csv", 1500, "text/csv"
        )
        for p in ("", "-summary")
    ]
    c = content_for([zipped], ["a@example.com"], linked=linked, size_budget_bytes=1000)
    assert c.link_mode and c.attachments == []
    for body in (c.text, c.html):
        assert "https://files.example/sales.csv" in body and "https://files.example/sales-summary.csv" in body
        assert "csv.zip" not in body
    attached = content_for([zipped], ["a@example.com"], linked=linked)  # within the budget: the zip alone
    assert attached.attachments == [zipped] and "shop_sales_2025-03.csv.zip" in attached.text


@pytest.mark.parametrize(
    ("business", "stored", "ascii_name"),
    [
        ("東京文具店", "audit_log.csv", "business-7_audit_log_2026-11-30.csv"),  # no ASCII letters: the id
        ("東京文具店", "sales.csv.zip", "business-7_sales_2026-11-30.csv.zip"),
        ("東京 Shibuya 店", "inventory.pdf", "shibuya_inventory_2026-11-30.pdf"),  # ASCII letters: kept
        ("Kofi's Corner Shop", "sales-line_items.csv", "kofis-corner-shop_sales-line_items_2026-11-30.csv"),
    ],
)
def test_ascii_mail_names_always_say_whose_file_it_is(business, stored, ascii_name):
    from pos_exports.delivery.email import ascii_mail_filename, mail_filename

    assert ascii_mail_filename(business, 7, stored, "2026-11-30") == ascii_name
    assert mail_filename(business, stored, "2026-11-30").startswith(f"{business}_")
