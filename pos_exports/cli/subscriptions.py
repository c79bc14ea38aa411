"""`subscriptions`: manage who receives which exports, when (a command group of the `pos-exports` CLI).

    pos-exports subscriptions add --business-id 2 --name "Weekly" --dataset sales --dataset customers \\
        --format xlsx --format pdf --frequency weekly --day-of-week monday --at 07:00 \\
        --recipient owner@bodega.example
    pos-exports subscriptions list [--business-id 2] [--active | --paused]
    pos-exports subscriptions show ID | pause ID | resume ID | remove ID
    pos-exports subscriptions update ID --at 08:30 --recipient a@shop.example --recipient b@shop.example
    pos-exports subscriptions import subscriptions.yaml     (all or nothing; upsert by business and name)
    pos-exports subscriptions export [--business-id 2]      (YAML that `import` reads back)
    pos-exports subscriptions settings 2 --notify-success --failure-recipient it@bodega.example

Wiring: `group` is the click group (`pos_exports.cli` adds it to `pos-exports`). Each subcommand is one
handler `handler(args, ctx) -> int` registered with `register_command(name, help, params, handler)`;
raising SubscriptionError prints `error: <field>: <message>` to stderr and exits 2.

The state database is `--state-url` or `POS_EXPORTS_STATE_URL` (SQLite under the Dagster home by
default). Business time zones (for "next fire" and to refuse unknown business ids) come from the
POS database: `--pos-url`, else `POS_DATABASE_URL`, else the demo database when it exists.
SQLAlchemy and the delivery modules are imported inside the handlers (a fast `--help`).
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import click

from pos_exports.cli.kit import Args, StateContext, args_of, checked, instant, short, text_table

if TYPE_CHECKING:
    from pos_exports.delivery.subscriptions import NotificationSettings, Subscription

COMMAND = "subscriptions"
UTC = dt.UTC

Handler = Callable[[Args, "Context"], int]

group = click.Group(
    COMMAND,
    help="Manage emailed export subscriptions and notification settings.",
    epilog="\b\nExamples:\n" + __doc__.split("\n\n")[1],
)


def _error(field: str, message: str) -> Exception:
    """A SubscriptionError (`error: field: message`, exit 2), imported only when raised."""
    from pos_exports.delivery.subscriptions import SubscriptionError

    return SubscriptionError(field, message)


def _common() -> list[click.Parameter]:
    return [
        click.Option(["--state-url"], help="state database URL (default: POS_EXPORTS_STATE_URL or SQLite)"),
        click.Option(["--pos-url"], help="POS database for business time zones (default: POS_DATABASE_URL)"),
        click.Option(["--now"], type=_instant, hidden=True),  # tests: a fixed "now"
    ]


def register_command(name: str, help: str, params: list[click.Parameter], handler: Handler) -> click.Command:
    """Add (or replace) a subcommand of `subscriptions`; returns its click command.

    The hook for `trigger` (manual delivery of a subscription's period), e.g.:

        register_command("trigger", "deliver one period now", [click.Argument(["id"])], run_trigger)

    `handler(args, ctx)` gets the options as attributes and a Context (state engine, business time
    zones, output, now) and returns an exit code; raising SubscriptionError prints `error: field: message`
    and exits 2. Every subcommand also takes `--state-url` and `--pos-url`.
    """

    def callback(**params: Any) -> int:
        from pos_exports.delivery.subscriptions import SubscriptionError

        args = args_of(params)
        return run_handler(handler, args, Context(args), SubscriptionError)

    command = click.Command(name, params=[*params, *_common()], callback=checked(callback), help=help)
    group.add_command(command)
    return command


class Context(StateContext):
    """What a handler needs, created lazily: the state engine, business time zones, now, output."""

    def __init__(self, args: Args) -> None:
        super().__init__(args)
        self._zones: dict[int, str] | None = None
        self._zones_loaded = False

    @property
    def business_timezones(self) -> dict[int, str] | None:
        if not self._zones_loaded:
            self._zones = load_business_timezones(getattr(self.args, "pos_url", None))
            self._zones_loaded = True
        return self._zones

    def zone_for(self, sub: Subscription) -> str | None:
        if sub.timezone:
            return sub.timezone
        return (self.business_timezones or {}).get(sub.business_id)


def load_business_timezones(pos_url: str | None = None) -> dict[int, str] | None:
    """id -> IANA zone of every business in the POS database, or None when there is none to read.

    An explicit `pos_url` that cannot be read is an error; otherwise `POS_DATABASE_URL` or the demo
    database (only if it already exists: it is not built here) is tried, with a warning on failure.
    """
    from pos_exports import config

    url = pos_url or config.settings().database_url
    if not url:
        demo = config.demo_database_path()
        if not demo.exists():
            return None
        url = f"sqlite:///{demo}"
    try:
        from pos_exports.source.database import connect, list_businesses

        with connect(url) as reader:
            return {b.id: b.timezone for b in list_businesses(reader)}
    except Exception as exc:  # any failure of the POS database means "zones unknown"
        from pos_exports.redact import scrub

        text = scrub(exc).strip()
        message = text.splitlines()[0] if text else type(exc).__name__
        if pos_url:
            raise _error("pos_url", message) from None
        print(f"warning: cannot read business time zones ({message}); business ids are not checked", file=sys.stderr)
        return None


# --- parsing helpers -----------------------------------------------------------------------------


def _id(field: str, text: str) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise _error(field, f"{text!r} is not a number") from None
    if value < 1:
        raise _error(field, f"{value} is not a valid id")
    return value


def _instant(text: str | dt.datetime | None, param: Any = None, ctx: Any = None) -> dt.datetime | None:
    """A click type: an ISO date-time, naive = UTC."""
    try:
        return instant(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _filters(pairs: list[str]) -> dict[str, str]:
    filters: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise _error("filters", f"{pair!r} is not key=value (e.g. customer_type=wholesale)")
        if key.strip() in filters:
            raise _error("filters", f"{key.strip()!r} is given twice")
        filters[key.strip()] = value.strip()
    return filters


_OPTION_FIELDS = (  # (argparse dest, subscription field, "" means None)
    ("business_id", "business_id", False),
    ("name", "name", False),
    ("dataset", "datasets", False),
    ("format", "formats", False),
    ("frequency", "frequency", False),
    ("at", "at", False),
    ("day_of_week", "day_of_week", True),
    ("day_of_month", "day_of_month", True),
    ("nth_weekday", "nth_weekday", True),
    ("timezone", "timezone", True),
    ("recipient", "recipients", False),
    ("subject", "subject_template", True),
    ("message", "message_template", True),
    ("only_if_data", "only_if_data", False),
)


def _input_from_args(args: Args) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for dest, field, empty_is_none in _OPTION_FIELDS:
        value = getattr(args, dest, None)
        if value is not None:
            data[field] = (value or None) if empty_is_none and isinstance(value, str) else value
    if args.filter:
        if getattr(args, "no_filters", False):
            raise _error("filters", "give either --filter or --no-filters")
        data["filters"] = _filters(args.filter)
    elif getattr(args, "no_filters", False):
        data["filters"] = {}
    return data


# --- output ----------------------------------------------------------------------------------------


def _local(instant: dt.datetime, zone: str) -> str:
    local = instant.astimezone(ZoneInfo(zone))
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"


def _next_fires(ctx: Context, sub: Subscription, count: int) -> list[dt.datetime] | None:
    from pos_exports.delivery import schedule

    zone = ctx.zone_for(sub)
    if zone is None:
        return None
    fires: list[dt.datetime] = []
    after = ctx.now
    for _ in range(count):
        after = schedule.next_fire(sub, zone, after)
        fires.append(after)
    return fires


def _describe_zone(ctx: Context, sub: Subscription) -> str:
    if sub.timezone:
        return sub.timezone
    zone = ctx.zone_for(sub)
    return f"{zone} (business)" if zone else "business's own (unknown here)"


def _show(ctx: Context, sub: Subscription) -> None:
    from pos_exports.delivery import schedule

    p = ctx.print
    zone = ctx.zone_for(sub)
    p(f"subscription {sub.id}: {sub.name}")
    p(f"  business:      {sub.business_id}")
    p(f"  status:        {'active' if sub.is_active else 'paused'}")
    p(f"  when:          {sub.when}")
    p(f"  time zone:     {_describe_zone(ctx, sub)}")
    p(f"  datasets:      {', '.join(sub.datasets)}")
    p(f"  formats:       {', '.join(sub.formats)} (in one email)")
    p(f"  recipients:    {', '.join(sub.recipients)}")
    p(f"  filters:       {', '.join(f'{k}={v}' for k, v in sub.filters.items()) or 'none'}")
    p(f"  only if data:  {'yes' if sub.only_if_data else 'no'}")
    p(f"  subject:       {sub.subject_template}")
    message = sub.message_template.rstrip("\n").splitlines() or [""]
    p(f"  message:       {message[0]}")
    for line in message[1:]:
        p(f"                 {line}".rstrip())
    if sub.created_at:
        p(f"  created:       {sub.created_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC")
    if sub.updated_at:
        p(f"  updated:       {sub.updated_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC")
    if not sub.is_active:
        p("  next fires:    none (paused)")
        return
    fires = _next_fires(ctx, sub, 3)
    if fires is None or zone is None:
        p("  next fires:    unknown (the business's time zone is not known here; give --pos-url)")
        return
    for i, fire in enumerate(fires):
        kind, key = schedule.period_at(sub, (ctx.business_timezones or {}).get(sub.business_id) or zone, fire)
        label = "  next fires:    " if i == 0 else "                 "
        p(f"{label}{_local(fire, zone)} ({fire:%Y-%m-%d %H:%M} UTC) -> {kind} {key}")


def _show_settings(ctx: Context, settings: NotificationSettings, stored: bool) -> None:
    p = ctx.print
    origin = "stored" if stored else "defaults, nothing stored"
    p(f"notification settings of business {settings.business_id} ({origin})")
    p(f"  notify on success:   {'yes' if settings.notify_success else 'no'}")
    p(f"  notify on failure:   {'yes' if settings.notify_failure else 'no'}")
    p(f"  default recipients:  {', '.join(settings.default_recipients) or '(none)'}")
    p(f"  failure recipients:  {', '.join(settings.failure_recipients) or '(none)'}")
    p(f"  from name:           {settings.from_name}")
    p(f"  reply-to:            {settings.reply_to or '(none)'}")


def _one_line(sub: Subscription) -> str:
    return f"subscription {sub.id} (business {sub.business_id}, {sub.name!r}, {sub.when})"


# --- handlers --------------------------------------------------------------------------------------


def _add(args: Args, ctx: Context) -> int:
    from pos_exports.delivery import subscriptions as subs

    sub = subs.add(ctx.engine, _input_from_args(args), business_timezones=ctx.business_timezones, now=ctx.now)
    ctx.print(f"added {_one_line(sub)}")
    _show(ctx, sub)
    return 0


def _update(args: Args, ctx: Context) -> int:
    from pos_exports.delivery import subscriptions as subs

    sub_id = _id("id", args.id)
    changes = _input_from_args(args)
    if not changes:
        raise _error("options", "nothing to change: give at least one option (see --help)")
    sub = subs.update(ctx.engine, sub_id, changes, business_timezones=ctx.business_timezones, now=ctx.now)
    ctx.print(f"updated {_one_line(sub)}")
    _show(ctx, sub)
    return 0


def _list(args: Args, ctx: Context) -> int:
    from pos_exports.delivery import schedule
    from pos_exports.delivery import subscriptions as subs

    business_id = _id("business_id", args.business_id) if args.business_id is not None else None
    if args.active and args.paused:
        raise _error("options", "give either --active or --paused")
    active = True if args.active else False if args.paused else None
    found = subs.find(ctx.engine, business_id=business_id, active=active)
    if not found:
        ctx.print("no subscriptions" + (" match" if business_id is not None or active is not None else " yet"))
        return 0
    rows = [["ID", "BUSINESS", "NAME", "WHEN", "TIME ZONE", "DATASETS", "FORMATS", "TO", "ACTIVE", "NEXT FIRE"]]
    for sub in found:
        zone = ctx.zone_for(sub)
        if not sub.is_active:
            next_text = "- (paused)"
        elif zone is None:
            next_text = "? (zone unknown)"
        else:
            next_text = _local(schedule.next_fire(sub, zone, ctx.now), zone)
        rows.append(
            [
                str(sub.id),
                str(sub.business_id),
                short(sub.name, 30),
                sub.when,
                sub.timezone or (f"{zone}*" if zone else "*"),
                ",".join(sub.datasets),
                ",".join(sub.formats),
                str(len(sub.recipients)),
                "yes" if sub.is_active else "no",
                next_text,
            ]
        )
    for line in text_table(rows):
        ctx.print(line)
    if any(not s.timezone for s in found):
        ctx.print("* the business's own time zone")
    return 0


def _show_cmd(args: Args, ctx: Context) -> int:
    from pos_exports.delivery import subscriptions as subs

    sub_id = _id("id", args.id)
    sub = subs.get(ctx.engine, sub_id)
    if sub is None:
        raise _error("id", f"no subscription with id {sub_id}")
    _show(ctx, sub)
    return 0


def _pause(args: Args, ctx: Context) -> int:
    from pos_exports.delivery import subscriptions as subs

    sub = subs.set_active(ctx.engine, _id("id", args.id), False, now=ctx.now)
    ctx.print(f"paused {_one_line(sub)}")
    return 0


def _resume(args: Args, ctx: Context) -> int:
    from pos_exports.delivery import subscriptions as subs

    sub = subs.set_active(ctx.engine, _id("id", args.id), True, now=ctx.now)
    ctx.print(f"resumed {_one_line(sub)}")
    return 0


def _remove(args: Args, ctx: Context) -> int:
    from pos_exports.delivery import subscriptions as subs

    sub = subs.remove(ctx.engine, _id("id", args.id))
    ctx.print(f"removed {_one_line(sub)}")
    return 0


def _import(args: Args, ctx: Context) -> int:
    from pathlib import Path

    from pos_exports.delivery import subscriptions as subs

    path = Path(args.file)
    zones = ctx.business_timezones
    _, settings = subs.parse_yaml(path, business_timezones=zones)  # validate first: a clean error, nothing written
    before = {(s.business_id, s.name) for s in subs.find(ctx.engine)}
    stored = subs.import_yaml(ctx.engine, path, business_timezones=zones, now=ctx.now)
    added = {s.id for s in stored if (s.business_id, s.name) not in before}
    ctx.print(
        f"imported {path}: {len(stored)} subscription(s) ({len(added)} added, {len(stored) - len(added)} updated), "
        f"{len(settings)} notification setting(s)"
    )
    for sub in stored:
        verb = "added  " if sub.id in added else "updated"
        ctx.print(f"  {verb} {_one_line(sub)}{'' if sub.is_active else ' [paused]'}")
    return 0


def _export(args: Args, ctx: Context) -> int:
    from pos_exports.delivery import subscriptions as subs

    business_id = _id("business_id", args.business_id) if args.business_id is not None else None
    ctx.out.write(subs.export_yaml(ctx.engine, business_id))
    return 0


def _settings(args: Args, ctx: Context) -> int:
    from pos_exports.delivery import subscriptions as subs

    business_id = _id("business_id", args.business_id)
    current = subs.get_settings(ctx.engine, business_id)
    data = current.to_input()
    changed = False
    for dest, field in (("notify_success", "notify_success"), ("notify_failure", "notify_failure")):
        if getattr(args, dest) is not None:
            data[field], changed = getattr(args, dest), True
    for dest, clear, field in (
        ("recipient", "no_recipients", "default_recipients"),
        ("failure_recipient", "no_failure_recipients", "failure_recipients"),
    ):
        values, cleared = getattr(args, dest), getattr(args, clear)
        if values and cleared:
            raise _error(field, f"give either --{dest.replace('_', '-')} or --{clear.replace('_', '-')}")
        if values or cleared:
            data[field], changed = (values or []), True
    if args.from_name is not None:
        data["from_name"], changed = args.from_name, True
    if args.reply_to is not None:
        data["reply_to"], changed = (args.reply_to or None), True
    if changed:
        saved = subs.save_settings(ctx.engine, data, business_timezones=ctx.business_timezones, now=ctx.now)
        ctx.print("saved")
        _show_settings(ctx, saved, stored=True)
    else:
        _show_settings(ctx, current, stored=current.updated_at is not None)
    return 0


# --- options of each subcommand ---------------------------------------------------------------------


def _subscription_options(*, update: bool) -> list[click.Parameter]:
    keep = " (replaces the current list)" if update else ""
    opt = click.Option
    params = [
        opt(["--business-id"], help="the business (POS businesses.id)"),
        opt(["--name"], help="a name, unique within the business"),
        opt(["--dataset"], multiple=True, help=f"sales, customers, inventory, audit_log; repeatable{keep}"),
        opt(["--format"], multiple=True, help=f"xlsx, csv, pdf; repeatable, one email{keep}"),
        opt(["--frequency"], help="daily, weekly or monthly"),
        opt(["--at"], metavar="HH:MM", help="local time of day to send"),
        opt(["--day-of-week"], help="weekly: monday..sunday (or 0-6, 0 = Monday)"),
        opt(["--day-of-month"], help="monthly: 1-28 or last"),
        opt(["--nth-weekday"], help="monthly: e.g. '2nd tuesday', 'last friday'"),
        opt(["--timezone"], help="IANA zone; default (or ''): the business's own"),
        opt(["--recipient"], multiple=True, help=f"one email address; repeatable{keep}"),
        opt(["--subject"], help="subject template ('' for the default); placeholders such as {period_label}"),
        opt(["--message"], help="message template ('' for the default)"),
        opt(["--filter"], multiple=True, metavar="KEY=VALUE", help=f"repeatable{keep}"),
        opt(["--only-if-data/--no-only-if-data"], default=None, help="skip periods without data"),
    ]
    if update:
        params.append(opt(["--no-filters"], is_flag=True, help="remove every filter"))
    return params


def _id_argument() -> list[click.Parameter]:
    return [click.Argument(["id"], metavar="ID")]  # the subscription id (see list)


_BUSINESS_OPTION = ["--business-id"]

register_command("add", "add a subscription", _subscription_options(update=False), _add)
register_command(
    "list",
    "list subscriptions with their next fire time",
    [
        click.Option(_BUSINESS_OPTION, help="only this business"),
        click.Option(["--active"], is_flag=True, help="only active subscriptions"),
        click.Option(["--paused"], is_flag=True, help="only paused subscriptions"),
    ],
    _list,
)
register_command("show", "show one subscription and its next fires", _id_argument(), _show_cmd)
register_command(
    "update", "change a subscription (validated as a whole)", [*_id_argument(), *_subscription_options(update=True)],
    _update,
)  # fmt: skip
register_command("pause", "pause a subscription", _id_argument(), _pause)
register_command("resume", "resume a paused subscription", _id_argument(), _resume)
register_command("remove", "delete a subscription (its delivery history stays)", _id_argument(), _remove)
register_command(
    "import",
    "add or update subscriptions from YAML (all or nothing; subscriptions: and notification_settings: lists)",
    [click.Argument(["file"], metavar="FILE")],
    _import,
)
register_command(
    "export",
    "print subscriptions as YAML that import reads back",
    [click.Option(_BUSINESS_OPTION, help="only this business")],
    _export,
)
register_command(
    "settings",
    "show or change a business's notification settings",
    [
        click.Argument(["business_id"], metavar="BUSINESS_ID"),
        click.Option(["--notify-success/--no-notify-success"], default=None, help="email when an export went out"),
        click.Option(["--notify-failure/--no-notify-failure"], default=None, help="email when an export failed"),
        click.Option(["--recipient"], multiple=True, help="default recipient; repeatable (replaces the list)"),
        click.Option(["--no-recipients"], is_flag=True, help="clear the default recipients"),
        click.Option(["--failure-recipient"], multiple=True, help="failure recipient; repeatable (replaces)"),
        click.Option(["--no-failure-recipients"], is_flag=True, help="clear the failure recipients"),
        click.Option(["--from-name"], help="sender display name"),
        click.Option(["--reply-to"], help="reply-to address ('' to clear)"),
    ],
    _settings,
)
# `trigger` (deliver a subscription's period now) is added by `pos_exports.cli`: see register_command.


def run_handler(handler: Callable[[Any, Any], int], args: Args, ctx: Any, *expected: type[Exception]) -> int:
    """Run a command handler; print `error: ...` (never a traceback) and return 2 for what users cause."""
    import sqlalchemy as sa

    from pos_exports.delivery.schedule import ScheduleError

    try:
        return handler(args, ctx) or 0
    except expected as exc:
        print(f"error: {exc}", file=sys.stderr)
    except ScheduleError as exc:
        print(f"error: schedule: {exc}", file=sys.stderr)
    except sa.exc.SQLAlchemyError as exc:
        from pos_exports.redact import redact_url, scrub

        detail = scrub(getattr(exc, "orig", None) or exc).strip().splitlines()
        shown = redact_url(ctx.state_url)
        print(f"error: state_url: cannot use {shown}: {detail[0] if detail else type(exc).__name__}", file=sys.stderr)
    return 2
