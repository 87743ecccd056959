"""Commands that set up and run the product: init, demo, scheduler."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from newsletter.bootstrap import prepare
from newsletter.cli.common import friendly_errors, open_database, out
from newsletter.config import get_settings
from newsletter.database import Database

app = typer.Typer()



@app.command()
@friendly_errors
def init() -> None:
    """Create or upgrade the database. Safe to run any number of times."""
    settings = get_settings()
    db = Database.from_settings(settings)
    before, after, added = prepare(settings, db)
    where = db.engine.url.render_as_string(hide_password=True)
    if before == after:
        out.print(f"Database {where} is up to date (revision {after}).", highlight=False)
    else:
        out.print(f"Database {where} upgraded from {before or 'empty'} to revision {after}.", highlight=False)
    if added:
        out.print(f"Installed the ready-made sequences {', '.join(repr(n) for n in added)}, paused: review them "
                  "with 'newsletter sequences show NAME', then 'newsletter sequences resume NAME'.", highlight=False)


@app.command()
@friendly_errors
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write the preview files.")] = Path("var/demo"),
) -> None:
    """Set up ./var, import a sample post, build its issue and write the previews."""
    from newsletter.demo import run_demo

    settings = get_settings()
    result = run_demo(settings, open_database(settings), out_dir)
    out.print(result.summary(), highlight=False)


@app.command("scheduler")
@friendly_errors
def run_scheduler() -> None:
    """Run the scheduler process (feed polling) until stopped with Ctrl-C or SIGTERM."""
    import scheduler

    settings = get_settings()
    try:
        scheduler.main(settings, open_database(settings))
    except KeyboardInterrupt:
        pass


@app.command("tracking-drain")
@friendly_errors
def tracking_drain() -> None:
    """Move the web processes' logged clicks and opens into the events table until stopped with
    SIGTERM ('newsletter serve' runs one; run it yourself beside web processes served otherwise, with
    NEWSLETTER_TRACKING_DRAIN_PROCESS=true for them)."""
    import logging

    from newsletter.tracking.drain_process import main

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    main(settings, open_database(settings))


@app.command()
@friendly_errors
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    background: Annotated[bool, typer.Option("--background/--web-only", help="Also run the scheduler and the "
                                             "dispatchers in this process (the embedded default).")] = True,
    workers: Annotated[int, typer.Option(help="Web processes sharing the port (PostgreSQL only); the scheduler "
                                         "and dispatchers, if any, run once, in the parent process.")] = 1,
) -> None:
    """Run the web app (sign-up, confirm, preferences, unsubscribe, view online), and by default the
    scheduler and the dispatchers too, so the embedded default is one process."""
    import os
    import threading

    import scheduler as scheduler_module
    from newsletter.sending.worker import run_worker
    from newsletter.tracking.drain_process import Supervisor
    from newsletter.transports import get_transport
    from newsletter.web.app import create_app
    from newsletter.web.server import FACTORY, check_workers, run, server_config

    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # not a line per job run
    settings = get_settings()
    check_workers(settings, workers)
    db = open_database(settings)
    # One drain process for all the web processes (each would otherwise drain in a thread of its own).
    os.environ["NEWSLETTER_TRACKING_DRAIN_PROCESS"] = "true"  # for the worker processes, which read it
    settings = settings.model_copy(update={"tracking_drain_process": True})
    drain = Supervisor(dict(os.environ))
    drain.start()
    transport = get_transport(settings)
    app_ = create_app(settings, db) if workers == 1 else FACTORY
    stop = threading.Event()
    jobs = sending = None
    if background:
        jobs = scheduler_module.build_scheduler(settings, db, background=True)
        jobs.start()
        sending = threading.Thread(target=run_worker, args=(settings, db, transport, stop), daemon=True,
                                   name="dispatchers")
        sending.start()
    out.print(f"Serving {settings.org_name} on http://{host}:{port}/ (Ctrl-C stops). "
              f"Emails go to the {settings.transport} transport"
              + (f" in {settings.outbox_dir}/" if settings.transport == "outbox" else "") + "."
              + (f" {workers} web processes." if workers > 1 else ""), highlight=False)
    config = server_config(app_, settings, host, port, workers)
    server = None
    try:
        server = run(config)
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it caught once it has shut down
        pass
    finally:
        stop.set()
        drain.stop(db, settings.tracking_log_dir)  # after the web processes, which sealed their segments
        if jobs is not None:
            jobs.shutdown(wait=False)
        if sending is not None:  # the requests in hand get their answers recorded (at most one timeout)
            sending.join(timeout=settings.sendgrid_timeout + 5)
    if server is not None and workers == 1 and not server.started:
        raise typer.Exit(3)  # uvicorn logged why (e.g. the port is taken), as uvicorn.run exits
