"""The ``streamforge`` command line."""
