"""What the ledger's row writes cost PostgreSQL, per storage layout: the measurement behind issue 19's
choice between a batch-level submitted state and fewer indexes.

A table shaped like ``deliveries`` (its columns and indexes as of migration 0025) gets N queued rows
(one INSERT ... SELECT, like an enqueue without the audience query), then the send's writes, batch by
batch: the claim (FOR UPDATE SKIP LOCKED, status claimed, batch, lease) and the submit (status
submitted, message id, submitted_at). Each layout runs in a fresh schema; the table prints seconds
and WAL per phase (the WAL a statement writes is what its heap and index entries cost):

- today: every index of migration 0025;
- partial step index: the (enrollment, step) unique index only over rows with an enrolment;
- ... + fillfactor 80: room on each page for an update to stay there (HOT needs no indexed column,
  and no column of a partial index's WHERE, to change: ``status`` is in four of them, so neither
  write can be HOT whatever the fillfactor);
- batch-level: the submit writes nothing per row (the batch carries "submitted"), so each recipient
  costs one insert and one update.

The floor is the insert alone: one row version per recipient, the least any ledger layout writes.

    .venv/bin/python bench/ledger_writes.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test [--contacts 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.summary import Row, add_summary_argument, write_summary  # noqa: E402

TABLE = """
CREATE TABLE d (id bigserial PRIMARY KEY, issue_id int, enrollment_id int, step_id int, contact_id int,
 list_id int, status varchar(12), due_at timestamptz, batch_id bigint, claimed_by varchar(100),
 lease_expires_at timestamptz, attempts int, provider_message_id varchar(200), error text, created_at timestamptz,
 submitted_at timestamptz) {fillfactor};
CREATE UNIQUE INDEX d_issue_contact ON d (issue_id, contact_id);
CREATE UNIQUE INDEX d_enrollment_step ON d (enrollment_id, step_id) {step_where};
CREATE INDEX d_queued_issue ON d (issue_id, due_at, id) WHERE status = 'queued';
CREATE INDEX d_queued_step ON d (step_id, due_at, id) WHERE status = 'queued';
CREATE INDEX d_claimed ON d (issue_id, lease_expires_at) WHERE status = 'claimed';
CREATE INDEX d_batch ON d (batch_id) WHERE batch_id IS NOT NULL;
CREATE INDEX d_submitted_at ON d (submitted_at) WHERE submitted_at IS NOT NULL;
CREATE INDEX d_step ON d (step_id) WHERE step_id IS NOT NULL;
CREATE INDEX d_unknown ON d (batch_id) WHERE status = 'unknown';
CREATE INDEX d_contact ON d (contact_id);
"""
PARTIAL = "WHERE enrollment_id IS NOT NULL"
LAYOUTS = {
    "today": {},
    "partial step index": {"step_where": PARTIAL},
    "partial step index + fillfactor 80": {"step_where": PARTIAL, "fillfactor": "WITH (fillfactor = 80)"},
    "batch-level submitted": {"submit": False},
    "batch-level + partial step index": {"step_where": PARTIAL, "submit": False},
}
CLAIM = ("WITH picked AS MATERIALIZED (SELECT id FROM d WHERE issue_id = 1 AND status = 'queued' AND due_at <= now() "
         "ORDER BY due_at, id LIMIT 1000 FOR UPDATE SKIP LOCKED) UPDATE d SET status = 'claimed', claimed_by = 'w', "
         "batch_id = %s, lease_expires_at = now(), attempts = attempts + 1 WHERE id IN (SELECT id FROM picked) "
         "RETURNING id, contact_id")
SUBMIT = ("UPDATE d SET status = 'submitted', provider_message_id = 'm', submitted_at = now(), lease_expires_at = NULL "
          "WHERE batch_id = %s AND status IN ('claimed', 'unknown')")


def run(url: str, contacts: int, fillfactor: str = "", step_where: str = "", submit: bool = True) -> dict[str, float]:
    """Seconds and WAL bytes of the insert, the claims and the submits of ``contacts`` rows."""
    import psycopg
    from sqlalchemy.engine import make_url

    from tests.pgschema import postgres_schema

    out = {"insert": 0.0, "claim": 0.0, "submit": 0.0, "insert_wal": 0, "claim_wal": 0, "submit_wal": 0}
    with postgres_schema(url, "bench_ledger") as schema_url:
        plain = make_url(schema_url).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(TABLE.format(fillfactor=fillfactor, step_where=step_where))

            def timed(phase: str, sql: str, params: tuple) -> None:
                before = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
                started = time.perf_counter()
                with conn.transaction():
                    conn.execute(sql, params)
                out[phase] += time.perf_counter() - started
                out[phase + "_wal"] += conn.execute("SELECT pg_current_wal_insert_lsn() - %s::pg_lsn",
                                                    (str(before),)).fetchone()[0]

            timed("insert", "INSERT INTO d (issue_id, contact_id, list_id, status, due_at, attempts, created_at) "
                            "SELECT 1, g, 1, 'queued', now(), 0, now() FROM generate_series(1, %s) g", (contacts,))
            conn.execute("VACUUM ANALYZE d")
            for batch in range(-(-contacts // 1000)):
                timed("claim", CLAIM, (batch,))
                if submit:
                    timed("submit", SUBMIT, (batch,))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", required=True, metavar="URL")
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    add_summary_argument(parser)
    args = parser.parse_args()
    print("reproduce: .venv/bin/python bench/ledger_writes.py " + " ".join(sys.argv[1:]), flush=True)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in LAYOUTS}
    for _ in range(args.repeat):  # layouts interleaved: each meets the same machine load
        for name, options in LAYOUTS.items():
            runs[name].append(run(args.postgres, args.contacts, **options))
    med = {name: {k: statistics.median(r[k] for r in results) for k in results[0]} for name, results in runs.items()}
    floor = statistics.median(r["insert"] for results in runs.values() for r in results)
    print(f"\n{args.contacts:,} rows, median of {args.repeat}; WAL in MB")
    print(f"{'layout':<36} {'insert s':>9} {'claim s':>8} {'submit s':>9} {'total s':>8} {'x floor':>8} "
          f"{'WAL ins':>8} {'WAL claim':>9} {'WAL sub':>8}")
    rows = []
    for name, m in med.items():
        total = m["insert"] + m["claim"] + m["submit"]
        print(f"{name:<36} {m['insert']:>9.2f} {m['claim']:>8.2f} {m['submit']:>9.2f} {total:>8.2f} "
              f"{total / floor:>8.2f} {m['insert_wal'] / 2**20:>8.1f} {m['claim_wal'] / 2**20:>9.1f} "
              f"{m['submit_wal'] / 2**20:>8.1f}")
        rows.append(Row("ledger_writes", f"ledger writes of {args.contacts:,} recipients, {name}", total, "s", floor,
                        "the insert alone (one row version per recipient)"))
    print(f"\nfloor: the insert alone, {floor:.2f} s (median over every layout's runs)")
    write_summary(args.summary_json, rows)


if __name__ == "__main__":
    main()
