"""The one exception type for tables a user can fix: a bad file, column, value or request."""

from jsynth.data.errors import DataError


class TableError(DataError):
    """A table could not be read, understood or encoded; the message names the file and column
    and says what to do."""
