#!/usr/bin/env python3
"""Run the compute-to-data job from site1, as a user (or the admin) of party1.

Submits the job, waits for it (at most --timeout seconds), prints the plan,
the per-step timeline and, on the last line, a JSON summary with the result.
Exits 0 only if the result is exactly [1, 34]. Run with --help for the arguments.
"""

import sys

from mahiru.scenarios.scripts import submit_job_main

if __name__ == "__main__":
    sys.exit(submit_job_main())
