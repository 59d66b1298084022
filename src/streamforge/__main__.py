"""Allow ``python -m streamforge``."""

from streamforge.cli.main import main

main()
