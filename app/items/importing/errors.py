"""Errors raised while reading an import file."""


class ImportFormatError(Exception):
    """A problem with the whole file, such as an undecodable encoding, no JSON at all or an unknown shape.

    The message names the value that was found and the option or change that fixes it.
    """


class RowProblem(Exception):
    """A problem with one source record. The reader turns it into a RowError and goes on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
