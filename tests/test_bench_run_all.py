"""bench/run_all.py: a script's --summary-json rows reach the one table with their ratio and verdict,
a benchmark whose program is missing says so in its row instead of stopping the run, and a failing
script is named with its exit code."""

from __future__ import annotations

import sys
from pathlib import Path

from bench import run_all
from bench.run_all import Benchmark, run_one, table


def test_a_benchmarks_summary_rows_make_the_table(tmp_path: Path) -> None:
    # import_contacts at a size small enough for a test: the real script, its real summary file.
    bench = Benchmark("import_contacts", ("--rows", "300", "--repeat", "1", "--skip-again"), ())
    run = run_one(bench, "small", None, tmp_path, tmp_path / "bench.log")
    assert not run.problem, (tmp_path / "bench.log").read_text()
    assert [row.what for row in run.rows] == ["import 300 rows, SQLite"]
    row = run.rows[0]
    assert row.unit == "rows/s" and row.floor and row.target == ">= 20,000 rows/s" and row.met == (row.figure >= 20_000)
    shown = table([run])
    assert "| import_contacts | small | import 300 rows, SQLite |" in shown
    assert f"{row.ratio:.2f}" in shown and ("✓" in shown) == row.met
    assert run.command[:2] == [sys.executable, str(run_all.HERE / "import_contacts.py")]


def test_a_missing_program_or_script_is_a_row_not_a_failure(tmp_path: Path) -> None:
    needs_wrk = Benchmark("import_contacts", ("--rows", "10"), (), needs=("no-such-program-here",))
    missing = run_one(needs_wrk, "small", None, tmp_path, tmp_path / "bench.log")
    assert missing.problem.startswith("not run: no-such-program-here is not installed") and not missing.rows
    absent = run_one(Benchmark("no_such_bench", (), ()), "large", None, tmp_path, tmp_path / "bench.log")
    assert absent.problem == "bench/no_such_bench.py is not in this checkout"
    shown = table([missing, absent])
    assert "| import_contacts | small | not run: no-such-program-here is not installed" in shown
    assert "| no_such_bench   | large | bench/no_such_bench.py is not in this checkout" in shown


def test_a_failing_script_is_named_with_its_exit_code(tmp_path: Path) -> None:
    broken = Benchmark("import_contacts", ("--rows", "not-a-number"), ())
    run = run_one(broken, "small", None, tmp_path, tmp_path / "bench.log")
    assert run.problem.startswith("failed (exit 2; see ") and not run.rows
    assert "invalid int value: 'not-a-number'" in (tmp_path / "bench.log").read_text()


def test_postgres_rows_get_the_server_only_where_the_script_takes_it(tmp_path: Path) -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    with_pg = run_all.command_for(Benchmark("reports", ("--repeat", "1"), ()), "small", url, tmp_path / "s.json")
    without = run_all.command_for(Benchmark("click_redirects", ("--small",), (), postgres=False), "small", url,
                                  tmp_path / "s.json")
    assert with_pg[2:] == ["--repeat", "1", "--postgres", url, "--summary-json", str(tmp_path / "s.json")]
    assert "--postgres" not in without
