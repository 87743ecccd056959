"""One budget for every property-based (fuzz) test, so CI runs them briefly and a developer can run
them for longer: ``NEWSLETTER_FUZZ_EXAMPLES=5000 make test`` (or ``pytest -m fuzz``).

Use it as ``@fuzz_settings`` on a Hypothesis test (with ``@pytest.mark.fuzz``). No deadline: these
machines are noisy, and a hang is caught by the per-example time check each fuzz test makes itself.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

FUZZ_EXAMPLES = int(os.environ.get("NEWSLETTER_FUZZ_EXAMPLES", "150"))

fuzz_settings = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("NEWSLETTER_FUZZ_RANDOM") is None,  # CI: the same examples each run
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
    database=None,  # no .hypothesis folder in the checkout
)
