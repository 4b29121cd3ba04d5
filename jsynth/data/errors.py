"""The one exception type the data layer raises for user-facing problems.

Every message names the file or spec involved, says what was expected and what
to do about it, so a failed run can be fixed without reading the source.
"""

from jsynth.errors import UserError


class DataError(UserError, ValueError):
    """A data set could not be found, read or validated.

    Subclasses ``ValueError`` so callers that already catch bad values keep working.
    """
