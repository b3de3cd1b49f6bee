#!/usr/bin/env python3
"""Set up site2 for the data access scenario, as party2's administrator.

Registers party2 and site2 at the registry, uploads site2's assets and adds
party2's rules. Run with --help for the arguments.
"""

import sys

from mahiru.scenarios import data_access as scenario
from mahiru.scenarios.scripts import init_site_main

if __name__ == "__main__":
    sys.exit(init_site_main(scenario.init_site, scenario.PARTY2, scenario.SITE2))
