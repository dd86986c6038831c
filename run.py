"""Almanac's one entry point: ``python run.py serve``, ``python run.py user add NAME``, ..."""

import sys

from server.cli import main

if __name__ == "__main__":
    sys.exit(main())
