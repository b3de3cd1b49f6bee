"""`python -m mahiru` runs the `mahiru` command."""

from mahiru.cli.main import main

main()
