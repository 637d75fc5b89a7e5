"""The ``agglo`` console script.

Every command accepts ``--json`` and then prints exactly one JSON document on stdout.
Errors go to stderr as one line (a JSON object with ``--json``) with a non-zero exit code:
1 for a refused or failed command, 2 for bad usage.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import click

from engine.directory import SYSTEM_ACTOR, Actor
from engine.engine import Engine, audit_to_dict
from engine.errors import AggloError, BadInput
from engine.records import (
    DeliveryRecord,
    DeliveryStatus,
    InboundSource,
    MessageStatus,
)
from engine.settings import Settings
from web.api import present

JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
AS_OPTION = click.option("--as", "as_user", metavar="USER", help="Act as this user (login).")


class Context:
    def __init__(self, settings: Settings, as_json: bool) -> None:
        self.settings = settings
        self.as_json = as_json
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from storage.bootstrap import open_engine

            self._engine = open_engine(self.settings)
        return self._engine

    def actor(self, login: str | None, default_system: bool = False) -> Actor:
        if login is None:
            if default_system:
                return SYSTEM_ACTOR
            raise BadInput("--as USER is required", field="--as")
        return self.engine.actor(login)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def emit(ctx: Context, payload: Any, text: Callable[[], str] | str) -> None:
    if ctx.as_json:
        click.echo(json.dumps(payload, ensure_ascii=False, default=_default))
    else:
        click.echo(text() if callable(text) else text)


def fail(ctx_json: bool, error: AggloError) -> NoReturn:
    if ctx_json:
        click.echo(json.dumps(error.to_dict(), ensure_ascii=False, default=_default), err=True)
    else:
        click.echo(f"error: {error.message}", err=True)
    sys.exit(1)


def parse_json(value: str | None, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    text = value
    if value.startswith("@"):
        path = Path(value[1:])
        if not path.is_file():
            raise BadInput(f"{what}: file {path} not found", field=what)
        text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BadInput(f"{what} is not valid JSON: {exc}", field=what) from exc
    if not isinstance(data, dict):
        raise BadInput(f"{what} must be a JSON object", field=what)
    return data


pass_ctx = click.make_pass_decorator(Context)


def command(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a subcommand: its own --json flag, and errors turned into one stderr line."""
    import functools

    @JSON_OPTION
    @click.pass_context
    @functools.wraps(fn)
    def wrapper(click_ctx: click.Context, as_json: bool, **kwargs: Any) -> None:
        ctx: Context = click_ctx.ensure_object(Context)
        ctx.as_json = ctx.as_json or as_json
        try:
            fn(ctx, **kwargs)
        except AggloError as exc:
            fail(ctx.as_json, exc)

    return wrapper


@click.group()
@JSON_OPTION
@click.option("--database", metavar="URL", help="Database URL (default: $AGGLO_DATABASE_URL or sqlite:///agglo.db).")
@click.pass_context
def cli(click_ctx: click.Context, as_json: bool, database: str | None) -> None:
    """agglo: the educational agglomeration's regulated procedures as BPMN processes."""
    try:
        settings = Settings.from_env(os.environ)
    except AggloError as exc:
        fail(as_json, exc)
    if database:
        settings = settings.with_(database_url=database)
    click_ctx.obj = Context(settings, as_json)


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@command
def db_upgrade(ctx: Context) -> None:
    """Create or migrate the database schema to the newest version."""
    from storage.bootstrap import upgrade

    revision = upgrade(ctx.settings.database_url)
    emit(
        ctx,
        {"database": ctx.settings.database_url, "revision": revision},
        f"database {ctx.settings.database_url} is at revision {revision}",
    )


@db.command("check")
@command
def db_check(ctx: Context) -> None:
    """Exit 0 when the database answers and its schema is current, 1 otherwise (a health check)."""
    from sqlalchemy.exc import SQLAlchemyError

    from engine.errors import InvalidState
    from storage.bootstrap import current_revision, head_revision
    from storage.db import connect

    database = connect(ctx.settings.database_url, pool_size=1)
    try:
        revision = current_revision(database)
    except SQLAlchemyError as exc:
        raise InvalidState(f"the database does not answer: {str(exc).splitlines()[0][:200]}") from exc
    finally:
        database.dispose()
    head = head_revision()
    if revision != head:
        raise InvalidState(f"the database schema is at {revision or 'nothing'}, not {head}: run `agglo db upgrade`")
    emit(ctx, {"revision": revision, "current": True}, f"database schema is current ({revision})")


@cli.command()
@command
def demo(ctx: Context) -> None:
    """Load reference data, demo users and deploy every process (safe to run twice)."""
    from engine.passwords import Passwords
    from storage.bootstrap import upgrade

    from .demo import seed

    upgrade(ctx.settings.database_url)
    s = ctx.settings
    report = seed(ctx.engine, Passwords(s.argon2_time_cost, s.argon2_memory_kib, s.argon2_parallelism), s.demo_password)

    def text() -> str:
        d = report.directory
        lines = [
            f"organisations: {d['organisations']}, users: {d['users_created']} created, "
            f"{d['users_updated']} updated, memberships added: {d['memberships_added']}"
        ]
        for p in report.processes:
            defs = ", ".join(f"{x['key']} v{x['version']}" for x in p["definitions"])
            lines.append(f"process {p['file']}: {defs}{'' if p['created'] else ' (unchanged)'}")
        lines.append(
            "demo logins: ministry, coordinator, admin, expert, and each municipality's code "
            "(e.g. kopeysk-go, troitsk-go)"
        )
        lines.append(f"demo password: {report.password}")
        return "\n".join(lines)

    emit(ctx, report.to_dict(), text)


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@AS_OPTION
@command
def deploy(ctx: Context, file: Path, as_user: str | None) -> None:
    """Deploy a BPMN file (with the form schema files beside it that it names)."""
    from .demo import load_process

    if not file.is_file():
        raise BadInput(f"file {file} not found", field="FILE")
    source, resources = load_process(file)
    result = ctx.engine.deploy(source, file.name, ctx.actor(as_user, default_system=True), resources)
    defs = ", ".join(f"{d.key} v{d.version}" for d in result.definitions)
    emit(ctx, result.to_dict(), f"{'deployed' if result.created else 'unchanged'}: {defs}")


@cli.command()
@click.argument("process_key")
@AS_OPTION
@click.option("--data", metavar="JSON", help="Start variables as a JSON object (or @file.json).")
@click.option("--business-key", metavar="KEY", help="Business key of the new instance.")
@command
def start(ctx: Context, process_key: str, as_user: str | None, data: str | None, business_key: str | None) -> None:
    """Start an instance of the latest version of PROCESS_KEY."""
    view = ctx.engine.start(process_key, ctx.actor(as_user), parse_json(data, "--data"), business_key)
    payload = view.to_dict()
    emit(ctx, payload, f"instance_id: {view.instance.id}\nstatus: {view.instance.status.value}")


def _task_line(t: dict[str, Any]) -> str:
    due = f" due {t['due_at']}" if t.get("due_at") else ""
    who = f" assignee {t['assignee']}" if t.get("assignee") else ""
    name = t["name"] or t["element_id"]
    return f"{t['id']}  {name}  [{t['organisation'] or '-'}]{who}{due}  instance {t['instance_id']}"


@cli.command()
@AS_OPTION
@command
def tasks(ctx: Context, as_user: str | None) -> None:
    """List the open tasks USER may see."""
    views = ctx.engine.tasks(ctx.actor(as_user))
    items = [v.to_dict() for v in views]
    emit(ctx, items, lambda: "\n".join(_task_line(t) for t in items) or "no open tasks")


@cli.command()
@click.argument("task_id")
@AS_OPTION
@command
def claim(ctx: Context, task_id: str, as_user: str | None) -> None:
    """Claim a task."""
    view = ctx.engine.claim(task_id, ctx.actor(as_user))
    emit(ctx, view.to_dict(), f"claimed {task_id} as {view.task.assignee}")


@cli.command()
@click.argument("task_id")
@AS_OPTION
@command
def unclaim(ctx: Context, task_id: str, as_user: str | None) -> None:
    """Give a claimed task back."""
    view = ctx.engine.unclaim(task_id, ctx.actor(as_user))
    emit(ctx, view.to_dict(), f"unclaimed {task_id}")


@cli.command()
@click.argument("task_id")
@AS_OPTION
@click.option("--data", metavar="JSON", help="Form data as a JSON object (or @file.json).")
@command
def complete(ctx: Context, task_id: str, as_user: str | None, data: str | None) -> None:
    """Complete a task with form data."""
    view = ctx.engine.complete(task_id, ctx.actor(as_user), parse_json(data, "--data"))
    payload = view.to_dict()
    new = ", ".join(t["name"] or t["element_id"] for t in payload["tasks"])
    emit(
        ctx,
        payload,
        f"completed {task_id}; instance {view.instance.id} is {view.instance.status.value}"
        + (f"; new tasks: {new}" if new else ""),
    )


@cli.command()
@click.argument("instance_id")
@AS_OPTION
@command
def instance(ctx: Context, instance_id: str, as_user: str | None) -> None:
    """Show an instance: status, variables, open tasks and history."""
    view = ctx.engine.instance(instance_id, ctx.actor(as_user, default_system=True))
    payload = view.to_dict()

    def text() -> str:
        lines = [
            f"instance {payload['id']} ({payload['process_key']} v{payload['definition_version']}): {payload['status']}"
        ]
        lines += ["  open: " + _task_line(t) for t in payload["tasks"]]
        lines += [
            f"  {h['at']}  {h['action']:<24} {h['actor']:<14} {h['element_id'] or ''}" for h in payload["history"]
        ]
        return "\n".join(lines)

    emit(ctx, payload, text)


@cli.command()
@click.argument("instance_id")
@AS_OPTION
@click.option("--reason", help="Why the instance is cancelled.")
@command
def cancel(ctx: Context, instance_id: str, as_user: str | None, reason: str | None) -> None:
    """Cancel a running instance."""
    view = ctx.engine.cancel(instance_id, ctx.actor(as_user), reason)
    emit(ctx, view.to_dict(), f"instance {instance_id} cancelled")


@cli.command()
@click.option("--year", type=int, default=None, help="Year (default: this year).")
@command
def members(ctx: Context, year: int | None) -> None:
    """The members of the agglomeration in a year (REG 5.6)."""
    year = year or ctx.engine.clock.now().astimezone(UTC).year
    items = [
        {
            "code": m.organisation.code,
            "name": m.organisation.name,
            "since_year": m.membership.since_year,
            "until_year": m.membership.until_year,
            "source": m.membership.source,
            "contract_number": m.membership.contract_number,
            "contract_date": m.membership.contract_date.isoformat() if m.membership.contract_date else None,
        }
        for m in ctx.engine.members(year)
    ]
    emit(
        ctx,
        {"year": year, "count": len(items), "members": items},
        lambda: f"{len(items)} members in {year}:\n" + "\n".join(f"  {i['name']} ({i['code']})" for i in items),
    )


@cli.command()
@command
def definitions(ctx: Context) -> None:
    """The latest version of every deployed process."""
    items = [
        {"id": d.id, "key": d.key, "version": d.version, "name": d.name, "deployed_at": d.deployed_at}
        for d in ctx.engine.definitions()
    ]
    emit(ctx, items, lambda: "\n".join(f"{d['key']} v{d['version']}  {d['name'] or ''}" for d in items))


@cli.command()
@AS_OPTION
@click.option("--instance", "instance_id", help="Only this instance.")
@click.option("--limit", type=int, default=100)
@command
def audit(ctx: Context, as_user: str | None, instance_id: str | None, limit: int) -> None:
    """The audit trail (newest last)."""
    from engine.ports import AuditQuery

    entries = ctx.engine.audit(
        ctx.actor(as_user, default_system=True), AuditQuery(instance_id=instance_id, limit=limit)
    )
    items = [audit_to_dict(e) for e in entries]
    emit(ctx, items, lambda: "\n".join(f"{e['at']}  {e['action']:<24} {e['actor']}" for e in items))


def _deadline_dict(d: Any) -> dict[str, Any]:
    return {
        "id": d.id,
        "task_id": d.task_id,
        "instance_id": d.instance_id,
        "element_id": d.element_id,
        "process_key": d.process_key,
        "organisation": d.organisation,
        "rule": d.rule,
        "clause": d.clause,
        "anchor": d.anchor,
        "anchor_value": d.anchor_value,
        "raw_date": d.raw_date,
        "final_date": d.final_date,
        "original_date": d.original_date,
        "due_at": d.due_at,
        "explanation": d.explanation,
        "original_explanation": d.original_explanation,
        "status": d.status.value,
        "late": d.late,
        "extensions": d.extensions,
        "next_reminder_at": d.next_reminder_at,
        "next_reminder": d.next_reminder_key,
        "escalated_at": d.escalated_at,
    }


@cli.command()
@click.option("--once", is_flag=True, help="Run every sweep once and exit (prints what was done).")
@click.option(
    "--tick", type=float, default=None, help="Seconds between ticks (default: AGGLO_WORKER_TICK_SECONDS or 1)."
)
@click.option("--owner", default=None, help="Name of this worker in leases (default: host:pid).")
@command
def worker(ctx: Context, once: bool, tick: float | None, owner: str | None) -> None:
    """Run the worker: timers, timer starts, reminders and escalations, e-mails."""
    import logging

    from engine.clock import SystemClock
    from scheduler.worker import Worker, summary

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    clock = SystemClock()
    engine = ctx.engine
    engine.clock = clock
    the_worker = Worker.from_engine(engine, clock, owner)
    if once:
        reports = the_worker.tick()
        the_worker.close()
        totals = summary(reports)
        emit(ctx, totals, lambda: "\n".join(f"{k}: {v}" for k, v in totals.items()) or "nothing to do")
        return
    the_worker.run(tick or ctx.settings.worker_tick_seconds)


def _secret_key(settings: Settings) -> Settings:
    """Keep one session key across restarts of the development server (AGGLO_SECRET_KEY wins)."""
    if settings.secret_key:
        return settings
    import secrets

    path = Path(".agglo-secret")
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return settings.with_(secret_key=path.read_text().strip())


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=5000, show_default=True, help="Port to listen on.")
@click.option("--with-worker", is_flag=True, help="Also run `agglo worker` as a separate process.")
@click.option("--debug", is_flag=True, help="Reload on code changes and show tracebacks (never in production).")
@command
def serve(ctx: Context, host: str, port: int, with_worker: bool, debug: bool) -> None:
    """Run the web app for development (in production: gunicorn -c web/gunicorn.conf.py web.wsgi:app)."""
    import atexit
    import logging
    import signal
    import subprocess

    from werkzeug.serving import run_simple

    from storage.bootstrap import current_revision, head_revision
    from web.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = _secret_key(ctx.settings)
    ctx.settings = settings
    engine = ctx.engine
    database = getattr(engine.store, "engine", None)
    if database is not None and current_revision(database) != head_revision():
        raise BadInput("the database schema is not current: run `agglo db upgrade` first", field="--database")
    app = create_app(settings, engine)
    worker: subprocess.Popen[bytes] | None = None
    if with_worker:
        env = {**os.environ, "AGGLO_DATABASE_URL": settings.database_url}
        worker = subprocess.Popen([sys.executable, "-m", "cli", "worker"], env=env)

        def stop_worker() -> None:
            if worker is not None and worker.poll() is None:
                worker.terminate()
                try:
                    worker.wait(10)
                except subprocess.TimeoutExpired:
                    worker.kill()

        atexit.register(stop_worker)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # so that atexit stops the worker too
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - only for the printed URL
    logins = {u.login for u in engine.users()}
    lines = [f"agglo is running at http://{shown}:{port}/"]
    if {"ministry", "coordinator", "admin"} <= logins:
        lines.append(
            "demo logins: ministry, coordinator, admin, expert, troitsk-go, kopeysk-go "
            f"(and every municipality's code); password: {settings.demo_password}"
        )
    if worker is not None:
        lines.append(f"worker running (pid {worker.pid})")
    lines.append("press Ctrl+C to stop")
    click.echo("\n".join(lines), err=True)
    run_simple(host, port, app, threaded=True, use_reloader=debug, use_debugger=debug)


@cli.group()
def calendar() -> None:
    """The production calendar."""


@calendar.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@AS_OPTION
@command
def calendar_import(ctx: Context, file: Path, as_user: str | None) -> None:
    """Import an official production calendar (xmlcalendar.ru format) for its year."""
    if not file.is_file():
        raise BadInput(f"file {file} not found", field="FILE")
    result = ctx.engine.import_calendar(file.read_bytes(), ctx.actor(as_user, default_system=True), file.name)
    emit(ctx, result, f"calendar {result['year']} imported; {result['deadlines_moved']} open deadline(s) moved")


@cli.command()
@AS_OPTION
@click.option("--instance", "instance_id", help="Only this instance.")
@click.option("--all", "show_all", is_flag=True, help="Closed deadlines too.")
@command
def deadlines(ctx: Context, as_user: str | None, instance_id: str | None, show_all: bool) -> None:
    """Deadlines the user may see, with their explanations."""
    from engine.ports import DeadlineQuery

    query = DeadlineQuery(instance_id=instance_id, status=None if show_all else DeadlineQuery().status)
    items = [_deadline_dict(d) for d in ctx.engine.deadlines(ctx.actor(as_user, default_system=True), query)]
    emit(
        ctx,
        items,
        lambda: (
            "\n".join(
                f"{d['final_date']}  {d['element_id']}  [{d['organisation'] or '-'}]  {d['explanation']}" for d in items
            )
            or "no deadlines"
        ),
    )


@cli.group()
def extension() -> None:
    """Deadline extension requests."""


@extension.command("request")
@click.argument("task_id")
@AS_OPTION
@click.option("--reason", required=True, help="Why more time is needed.")
@click.option("--date", "proposed", required=True, help="The proposed new deadline (YYYY-MM-DD).")
@command
def extension_request(ctx: Context, task_id: str, as_user: str | None, reason: str, proposed: str) -> None:
    """Ask for a later deadline."""
    request = ctx.engine.request_extension(task_id, ctx.actor(as_user), reason, _parse_date(proposed, "--date"))
    emit(ctx, request.__dict__, f"extension request {request.id} sent to the {request.approver_role}")


@extension.command("decide")
@click.argument("request_id")
@AS_OPTION
@click.option("--approve/--refuse", required=True)
@click.option("--comment", default=None)
@click.option("--date", "new_date", default=None, help="Grant a different date than asked (YYYY-MM-DD).")
@command
def extension_decide(
    ctx: Context, request_id: str, as_user: str | None, approve: bool, comment: str | None, new_date: str | None
) -> None:
    """Approve or refuse an extension request."""
    decided = ctx.engine.decide_extension(
        request_id, ctx.actor(as_user), approve, comment, _parse_date(new_date, "--date") if new_date else None
    )
    emit(ctx, decided.__dict__, f"extension request {request_id}: {decided.status.value}")


@cli.command()
@AS_OPTION
@click.option("--unread", is_flag=True)
@command
def notifications(ctx: Context, as_user: str | None, unread: bool) -> None:
    """The user's in-app notifications."""
    items = [n.__dict__ for n in ctx.engine.notifications(ctx.actor(as_user), unread)]
    emit(
        ctx,
        items,
        lambda: "\n".join(f"{n['created_at']:%d.%m.%Y %H:%M}  {n['title']}" for n in items) or "no notifications",
    )


@cli.command("variables")
@click.argument("instance_id")
@AS_OPTION
@click.option("--data", metavar="JSON", required=True, help="Variables to change, as a JSON object.")
@command
def set_variables(ctx: Context, instance_id: str, as_user: str | None, data: str) -> None:
    """Change variables of a running instance (e.g. the Day's date): dependent deadlines move."""
    view = ctx.engine.set_variables(instance_id, ctx.actor(as_user), parse_json(data, "--data"))
    emit(ctx, view.to_dict(), f"instance {instance_id} variables changed")


@cli.command()
@click.option("--year", type=int, required=True, help="The year to simulate.")
@click.option("--day-date", required=True, help="The Day of the agglomeration (YYYY-MM-DD).")
@click.option("--members", type=int, default=5, help="How many member municipalities take part.")
@click.option("--move-day", default=None, help="The Ministry moves the Day to this date (YYYY-MM-DD) ...")
@click.option("--move-on", default=None, help="... on this date (YYYY-MM-DD).")
@command
def simulate(ctx: Context, year: int, day_date: str, members: int, move_day: str | None, move_on: str | None) -> None:
    """Run the yearly cycle on a virtual clock with scripted people (some late on purpose)."""
    import time as _time

    from .simulate import Simulation, members_of, timeline

    day = _parse_date(day_date, "--day-date")
    if day.year != year:
        raise BadInput("--day-date must fall in --year", field="--day-date")
    if (move_day is None) != (move_on is None):
        raise BadInput("--move-day and --move-on go together", field="--move-day")
    started = _time.perf_counter()
    sim = Simulation(
        year,
        day,
        members_of(year, members),
        _parse_date(move_day, "--move-day") if move_day else None,
        _parse_date(move_on, "--move-on") if move_on else None,
    )
    rows = timeline(sim, sim.run())
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["event"]] = counts.get(row["event"], 0) + 1
    payload = {
        "year": year,
        "day_date": day.isoformat(),
        "members": sim.members,
        "seconds": round(_time.perf_counter() - started, 2),
        "summary": counts,
        "late_completions": sum(r["late"] for r in rows),
        "timeline": rows,
    }

    def text() -> str:
        lines = [
            f"{r['at'][:16].replace('T', ' ')}  {r['what']:<17} {(r['task'] or ''):<60.60} "
            f"{(r['organisation'] or ''):<18} {r['detail']}{'  [с опозданием]' if r['late'] else ''}"
            for r in rows
        ]
        lines.append("")
        lines.append(
            f"{len(rows)} events in {payload['seconds']} s: " + ", ".join(f"{k} {v}" for k, v in counts.items())
        )
        return "\n".join(lines)

    emit(ctx, payload, text)


# -- webhooks: subscriptions and their delivery log, sources of incoming webhooks; messages -------------------
#
# Administrators' commands (--as defaults to the system actor, an administrator, as for `deploy`). A secret is
# printed once, by the command that makes it (add, rotate); no other output carries it.

INBOUND_PATH = "/webhooks/in/{name}"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _source_dict(s: InboundSource, base_url: str) -> dict[str, Any]:
    path = INBOUND_PATH.format(name=s.name)
    return {**present.source(s, base_url.rstrip("/") + path), "path": path}


def _event_types(values: tuple[str, ...]) -> list[str]:
    """``--event a --event b`` or ``--event a,b``."""
    return [t.strip() for v in values for t in v.split(",") if t.strip()]


def _subscription_line(s: dict[str, Any]) -> str:
    state = "active" if s["active"] else "disabled" + (f" ({s['disabled_reason']})" if s["disabled_reason"] else "")
    events = ", ".join(s["event_types"]) or "every event"
    organisation = s["organisation"] or "every organisation"
    failures = f"  {s['consecutive_failures']} failure(s) in a row" if s["consecutive_failures"] else ""
    return f"{s['id']}  {state:<8} {s['url']}  [{events}]  [{organisation}]{failures}"


def _rotation_text(until: str | None) -> str:
    return f"the previous secret signs too until {until}" if until else "the previous secret no longer signs"


def recent_deliveries(
    engine: Engine, actor: Actor, subscription_id: str, status: DeliveryStatus | None, count: int
) -> list[DeliveryRecord]:
    """The subscription's ``count`` most recent deliveries, newest first (the store lists oldest first)."""
    found = engine.webhook_deliveries(actor, subscription_id, status, limit=1000)
    return list(reversed(found[-count:])) if count else []


@cli.group()
def webhooks() -> None:
    """Webhooks: subscriptions to events (with their delivery log) and sources of incoming webhooks."""


@webhooks.command("add")
@click.argument("url")
@click.option(
    "--event",
    "event_types",
    multiple=True,
    metavar="TYPE",
    help="An event type to send (repeat, or comma-separated; none: every type). See `agglo webhooks events`.",
)
@click.option("--organisation", metavar="ORG", help="Only the events of this organisation's instances.")
@click.option("--description", default="", help="Who receives the events, for the administrators.")
@AS_OPTION
@command
def webhooks_add(
    ctx: Context,
    url: str,
    event_types: tuple[str, ...],
    organisation: str | None,
    description: str,
    as_user: str | None,
) -> None:
    """Subscribe URL to events; prints the subscription's id and its signing secret (only now)."""
    actor = ctx.actor(as_user, default_system=True)
    sub, secret = ctx.engine.create_subscription(actor, url, _event_types(event_types), organisation, description)
    payload = {**present.subscription(sub), "secret": secret}
    emit(
        ctx,
        payload,
        lambda: (
            f"subscription {sub.id} created: {_subscription_line(payload)}\n"
            f"secret: {secret}\n"
            "the secret is shown only now: the receiver verifies the webhook-signature header with it"
        ),
    )


@webhooks.command("list")
@AS_OPTION
@command
def webhooks_list(ctx: Context, as_user: str | None) -> None:
    """Every webhook subscription, with its state and failures."""
    items = [present.subscription(s) for s in ctx.engine.subscriptions(ctx.actor(as_user, default_system=True))]
    emit(ctx, items, lambda: "\n".join(_subscription_line(s) for s in items) or "no webhook subscriptions")


@webhooks.command("show")
@click.argument("subscription_id")
@click.option(
    "--status", type=click.Choice([s.value for s in DeliveryStatus]), help="Only the deliveries in this state."
)
@click.option("--limit", type=click.IntRange(0, 1000), default=20, show_default=True, help="How many deliveries.")
@AS_OPTION
@command
def webhooks_show(ctx: Context, subscription_id: str, status: str | None, limit: int, as_user: str | None) -> None:
    """A subscription with its most recent deliveries (newest first) and each one's attempts."""
    actor = ctx.actor(as_user, default_system=True)
    sub = present.subscription(ctx.engine.subscription(actor, subscription_id))
    chosen = DeliveryStatus(status) if status else None
    deliveries = [
        {**present.delivery(d), "attempt_log": [present.attempt(a) for a in ctx.engine.delivery_attempts(actor, d.id)]}
        for d in recent_deliveries(ctx.engine, actor, subscription_id, chosen, limit)
    ]
    payload = {**sub, "deliveries": deliveries}

    def text() -> str:
        lines = [
            _subscription_line(sub),
            f"  description: {sub['description'] or '-'}",
            f"  created {sub['created_at']} by {sub['created_by']}; changed {sub['updated_at']}",
        ]
        if sub["rotating_until"]:
            lines.append(f"  {_rotation_text(sub['rotating_until'])}")
        lines.append(f"deliveries ({len(deliveries)}, newest first):" if deliveries else "no deliveries")
        for d in deliveries:
            extra = f"  next attempt {d['next_attempt_at']}" if d["status"] in ("queued", "retry") else ""
            lines.append(
                f"  {d['id']}  {d['event_type'] or '-'}  {d['status']}  {d['attempts']} attempt(s){extra}"
                + (f"  error: {d['last_error']}" if d["last_error"] else "")
            )
            for a in d["attempt_log"]:
                latency = f"{a['latency_ms']:.0f} ms" if a["latency_ms"] is not None else "-"
                said = a["error"] or (a["excerpt"] or "")[:120]
                lines.append(f"    {a['at']}  {a['outcome']:<8} HTTP {a['status'] or '-'}  {latency}  {said}".rstrip())
        return "\n".join(lines)

    emit(ctx, payload, text)


def _set_subscription_active(ctx: Context, subscription_id: str, as_user: str | None, active: bool) -> None:
    sub = ctx.engine.update_subscription(ctx.actor(as_user, default_system=True), subscription_id, active=active)
    emit(
        ctx,
        present.subscription(sub),
        f"subscription {sub.id} enabled (failure count reset; undelivered events go out)"
        if active
        else f"subscription {sub.id} disabled",
    )


@webhooks.command("enable")
@click.argument("subscription_id")
@AS_OPTION
@command
def webhooks_enable(ctx: Context, subscription_id: str, as_user: str | None) -> None:
    """Enable a subscription (also one the worker disabled after failures)."""
    _set_subscription_active(ctx, subscription_id, as_user, True)


@webhooks.command("disable")
@click.argument("subscription_id")
@AS_OPTION
@command
def webhooks_disable(ctx: Context, subscription_id: str, as_user: str | None) -> None:
    """Stop sending events to a subscription."""
    _set_subscription_active(ctx, subscription_id, as_user, False)


OVERLAP_OPTION = click.option(
    "--overlap-hours",
    type=click.FloatRange(min=0),
    default=24.0,
    show_default=True,
    help="How long the previous secret stays valid too (0: at once; at most 14 days).",
)


@webhooks.command("rotate")
@click.argument("subscription_id")
@OVERLAP_OPTION
@AS_OPTION
@command
def webhooks_rotate(ctx: Context, subscription_id: str, overlap_hours: float, as_user: str | None) -> None:
    """A new signing secret (printed only now); the old one signs alongside it for the overlap."""
    sub, secret = ctx.engine.rotate_subscription_secret(
        ctx.actor(as_user, default_system=True), subscription_id, timedelta(hours=overlap_hours)
    )
    until = _iso(sub.previous_until) if sub.previous_secret else None
    payload = {**present.subscription(sub), "secret": secret, "previous_valid_until": until}
    emit(ctx, payload, lambda: f"new secret of {sub.id}: {secret}\n{_rotation_text(until)}")


@webhooks.command("redeliver")
@click.argument("delivery_id")
@AS_OPTION
@command
def webhooks_redeliver(ctx: Context, delivery_id: str, as_user: str | None) -> None:
    """Send a delivery again (the worker sends it on its next tick, with the same webhook-id)."""
    delivery = ctx.engine.redeliver(ctx.actor(as_user, default_system=True), delivery_id)
    emit(ctx, present.delivery(delivery), f"delivery {delivery.id} queued again: the worker sends it on its next tick")


@webhooks.command("events")
@command
def webhooks_events(ctx: Context) -> None:
    """The catalogue of event types a subscription can ask for."""
    from engine import events

    items = events.catalogue()
    emit(
        ctx,
        {"version": events.VERSION, "types": items, "envelope": events.envelope_schema()},
        lambda: "\n".join(f"{e['type']:<20} {e['summary']}" for e in items),
    )


@webhooks.group("source")
def webhooks_source() -> None:
    """Sources of incoming webhooks: systems that POST signed events to /webhooks/in/NAME."""


@webhooks_source.command("add")
@click.argument("name")
@click.option("--description", default="", help="Which system sends, for the administrators.")
@AS_OPTION
@command
def webhooks_source_add(ctx: Context, name: str, description: str, as_user: str | None) -> None:
    """Add a source; prints its signing secret (only now) and the address it posts to."""
    actor = ctx.actor(as_user, default_system=True)
    wanted = (name or "").strip().lower()
    if any(s.name == wanted for s in ctx.engine.sources(actor)):
        raise BadInput(
            f"source {wanted!r} exists: `agglo webhooks source rotate {wanted}` gives it a new secret", field="NAME"
        )
    source, secret = ctx.engine.save_source(actor, name, description)
    payload = {**_source_dict(source, ctx.settings.base_url), "secret": secret}
    emit(
        ctx,
        payload,
        lambda: (
            f"source {source.name} created\n"
            f"secret: {secret}\n"
            "the secret is shown only now: the sender signs its requests with it (Standard Webhooks)\n"
            f"inbound URL: {payload['url']} (path {payload['path']})"
        ),
    )


@webhooks_source.command("rotate")
@click.argument("name")
@OVERLAP_OPTION
@AS_OPTION
@command
def webhooks_source_rotate(ctx: Context, name: str, overlap_hours: float, as_user: str | None) -> None:
    """A new secret for a source (printed only now); the old one is accepted too for the overlap."""
    source, secret = ctx.engine.rotate_source_secret(
        ctx.actor(as_user, default_system=True), name, timedelta(hours=overlap_hours)
    )
    until = _iso(source.previous_until) if source.previous_secret else None
    payload = {**_source_dict(source, ctx.settings.base_url), "secret": secret, "previous_valid_until": until}
    accepted = f"the previous secret is accepted too until {until}" if until else "the previous secret is refused now"
    emit(ctx, payload, lambda: f"new secret of source {source.name}: {secret}\n{accepted}")


def _set_source_active(ctx: Context, name: str, as_user: str | None, active: bool) -> None:
    source = ctx.engine.set_source_active(ctx.actor(as_user, default_system=True), name, active)
    emit(
        ctx,
        _source_dict(source, ctx.settings.base_url),
        f"source {source.name} {'enabled' if active else 'disabled: its requests are refused (404)'}",
    )


@webhooks_source.command("enable")
@click.argument("name")
@AS_OPTION
@command
def webhooks_source_enable(ctx: Context, name: str, as_user: str | None) -> None:
    """Accept a source's webhooks again."""
    _set_source_active(ctx, name, as_user, True)


@webhooks_source.command("disable")
@click.argument("name")
@AS_OPTION
@command
def webhooks_source_disable(ctx: Context, name: str, as_user: str | None) -> None:
    """Refuse a source's webhooks."""
    _set_source_active(ctx, name, as_user, False)


@webhooks_source.command("list")
@AS_OPTION
@command
def webhooks_source_list(ctx: Context, as_user: str | None) -> None:
    """Every source of incoming webhooks, with its address."""
    found = ctx.engine.sources(ctx.actor(as_user, default_system=True))
    items = [_source_dict(s, ctx.settings.base_url) for s in found]

    def line(s: dict[str, Any]) -> str:
        state = "active" if s["active"] else "disabled"
        rotating = f"  (previous secret accepted until {s['rotating_until']})" if s["rotating_until"] else ""
        return f"{s['name']}  {state:<8} {s['url']}  {s['description']}".rstrip() + rotating

    emit(ctx, items, lambda: "\n".join(line(s) for s in items) or "no webhook sources")


@cli.group()
def message() -> None:
    """BPMN messages to processes (as an outside system sends them)."""


@message.command("send")
@click.argument("name")
@click.option(
    "--correlation", metavar="JSON", help="Keys choosing the instance (business_key, instance_id, a variable...)."
)
@click.option("--data", metavar="JSON", help="The message's variables as a JSON object (or @file.json).")
@click.option("--key", metavar="KEY", help="Idempotency key: the same key again moves nothing (default: a new one).")
@click.option("--ttl-hours", type=float, default=None, help="How long to keep it when no instance waits yet (7 days).")
@AS_OPTION
@command
def message_send(
    ctx: Context,
    name: str,
    correlation: str | None,
    data: str | None,
    key: str | None,
    ttl_hours: float | None,
    as_user: str | None,
) -> None:
    """Send message NAME: it moves the one instance waiting for it, starts a process, or waits (buffered)."""
    import uuid

    actor = ctx.actor(as_user, default_system=True)
    outcome = ctx.engine.receive_message(
        actor,
        name=name,
        correlation=parse_json(correlation, "--correlation"),
        variables=parse_json(data, "--data"),
        key=f"cli:{actor.login}:{key or uuid.uuid4().hex}"[:300],
        source="cli",
        ttl=timedelta(hours=ttl_hours) if ttl_hours is not None else None,
    )
    payload = outcome.to_dict()
    said = {
        "correlated": f"correlated: instance {payload['instance_id']} moved on",
        "started": f"started: instance {payload['instance_id']}",
        "buffered": f"buffered until {payload['buffered_until']}: no instance waits for it yet",
        "duplicate": f"duplicate: this key was received before (message {payload['message_id']}); nothing moved",
    }
    emit(ctx, payload, f"message {payload['name']} {said.get(outcome.status, outcome.status)}")


@message.command("list")
@click.option("--status", type=click.Choice([s.value for s in MessageStatus]), help="Only messages in this state.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@AS_OPTION
@command
def message_list(ctx: Context, status: str | None, limit: int, as_user: str | None) -> None:
    """Messages received, newest first."""
    found = ctx.engine.messages(
        ctx.actor(as_user, default_system=True), MessageStatus(status) if status else None, limit
    )
    items = [present.message(m) for m in found]
    emit(
        ctx,
        items,
        lambda: (
            "\n".join(
                f"{m['received_at']}  {m['status']:<10} {m['name']}  {json.dumps(m['correlation'], ensure_ascii=False)}"
                f"  {m['source']}" + (f"  instance {m['instance_id']}" if m["instance_id"] else "")
                for m in items
            )
            or "no messages"
        ),
    )


def _parse_date(value: str, what: str) -> Any:
    from datetime import date

    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise BadInput(f"{what} must be a date YYYY-MM-DD, not {value!r}", field=what) from exc


def main() -> None:
    cli(prog_name="agglo")


if __name__ == "__main__":
    main()
