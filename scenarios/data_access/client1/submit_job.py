#!/usr/bin/env python3
"""Run the data access job at site1 as a user of party1, and check its result.

Prints `{"result": ..., "expected": [1, 34]}`; exits 0 only if they match.
Run with --help for the arguments.
"""

import sys

from mahiru.scenarios.data_access import submit_main

if __name__ == "__main__":
    sys.exit(submit_main())
