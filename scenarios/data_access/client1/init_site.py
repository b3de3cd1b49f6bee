#!/usr/bin/env python3
"""Set up site1 for the data access scenario, as party1's administrator.

Registers party1 and site1 at the registry, uploads site1's assets and adds
party1's rules. Run with --help for the arguments.
"""

import sys

from mahiru.scenarios import data_access as scenario
from mahiru.scenarios.scripts import init_site_main

if __name__ == "__main__":
    sys.exit(init_site_main(scenario.init_site, scenario.PARTY1, scenario.SITE1))
