"""The one base class of the errors a user can fix: what the command line prints as one line.

Every problem with an input (a path, a shape, a config value, a corrupt file, a request that
cannot be met) raises a ``UserError`` whose message says what was wrong and what to do; the CLI
prints it and exits 2. Any other exception is a bug in jsynth or in code calling it, and keeps
its traceback. The subclasses are also ``ValueError`` (``CheckpointError``: ``RuntimeError``,
``NonFiniteLossError``: ``FloatingPointError``), so library callers that catch those still do.
"""


class UserError(Exception):
    """An input or request the user can fix; the message says how."""


class InputError(UserError, ValueError):
    """A value, shape or request that cannot be used as given (not tied to one file or config)."""
