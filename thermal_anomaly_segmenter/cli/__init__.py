"""The ``taseg`` command line: the parser and one function per command."""
