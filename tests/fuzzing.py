"""One budget for every property-based (fuzz) test, so CI runs them briefly and a developer can run
them for longer: ``NEWSLETTER_FUZZ_EXAMPLES=5000 make test`` (or ``pytest -m fuzz``).

Use it as ``@fuzz_settings`` on a Hypothesis test (with ``@pytest.mark.fuzz``). No deadline: these
machines are noisy, and a hang is caught by the per-example time check each fuzz test makes itself
(``with time_limit(): ...`` around the code under test).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from hypothesis import HealthCheck, settings

FUZZ_EXAMPLES = int(os.environ.get("NEWSLETTER_FUZZ_EXAMPLES", "150"))

fuzz_settings = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("NEWSLETTER_FUZZ_RANDOM") is None,  # CI: the same examples each run
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
    database=None,  # no .hypothesis folder in the checkout
)

# A generous bound for one example on a modest input (at most some tens of kB): parsing takes
# milliseconds, so going past it means a hang or a blow-up (catastrophic backtracking, an
# exponential expansion), not a slow machine.
EXAMPLE_SECONDS = 5.0


class Hang(AssertionError):
    """One example ran past its time limit."""


@contextmanager
def time_limit(seconds: float = EXAMPLE_SECONDS) -> Iterator[None]:
    """Fail the example inside if it runs longer than ``seconds``.

    On the main thread a timer interrupts Python code that loops for ever, so Hypothesis gets a
    failure to shrink instead of a stuck run; the clock is also read at the end, for work done in
    C that only returns late.
    """
    start = time.monotonic()
    interrupt = threading.current_thread() is threading.main_thread()

    def expired(signum: int, frame: object) -> None:
        raise Hang(f"an example ran for more than {seconds:g} s (a hang?)")

    if interrupt:
        previous = signal.signal(signal.SIGALRM, expired)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        if interrupt:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    elapsed = time.monotonic() - start
    if elapsed > seconds:
        raise Hang(f"an example took {elapsed:.1f} s, over the {seconds:g} s limit (a hang?)")
