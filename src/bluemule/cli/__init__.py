"""The ``bluemule`` command line: a thin shell over the library (see ``docs/cli.md``)."""
