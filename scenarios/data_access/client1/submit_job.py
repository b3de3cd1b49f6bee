#!/usr/bin/env python3
"""Run the data access job from site1, as a user (or the admin) of party1.

Submits the job (planned at site1, which reads party2's input live from
site2), waits for it (at most --timeout seconds), prints the plan, the
per-step timeline and, on the last line, a JSON summary with the result.
Exits 0 only if the result is exactly [1, 34]. Run with --help for the arguments.
"""

import sys

from mahiru.scenarios import data_access
from mahiru.scenarios.scripts import submit_job_main

if __name__ == "__main__":
    sys.exit(submit_job_main(scenario="data access", workflow=data_access.job()))
