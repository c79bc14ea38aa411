"""Sample email content for the email tests: two small files and the context of a monthly export (the real
`render_content` fills it)."""

from __future__ import annotations

from pathlib import Path

from pos_exports.delivery.email import Attachment, render_content

PERIOD = "2025-03"


def make_files(folder: Path) -> list[Attachment]:
    folder.mkdir(parents=True, exist_ok=True)
    xlsx = folder / "sales.xlsx"
    xlsx.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 40)
    csv = folder / "sales.csv"
    csv.write_bytes("date,total\r\n2025-03-01,12.50\r\nŁódź,3.10\r\n".encode())
    return [
        Attachment(
            "sales.xlsx",
            xlsx,
            "exports/42/monthly/2025-03/sales.xlsx",
            xlsx.stat().st_size,
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
        Attachment("sales.csv", csv, "exports/42/monthly/2025-03/sales.csv", csv.stat().st_size, "text/csv"),
    ]


CONTEXT = {
    "business_name": "Café Zürich & Sons",
    "period_label": "March 2025",
    "period_key": PERIOD,
    "frequency": "monthly",
    "datasets": ["sales", "customers"],
    "timezone": "Europe/Zurich",
    "subscription_name": "Monthly sales",
}


def content_for(files: list[Attachment], to: list[str], **overrides):
    kwargs = dict(
        subject_template="{business_name}: {frequency} export for {period_label}",
        message_template="Hello,\n\nattached are the {datasets} exports for {period_label}.",
        context=CONTEXT,
        summary=[("Total sales", "1,234.50"), ("Transactions", "87")],
        files=files,
        to=to,
        from_name="Acme POS, Exports",
        from_address="exports@acme.example",
        reply_to="owner@cafe.example",
    )
    kwargs.update(overrides)
    return render_content(**kwargs)
