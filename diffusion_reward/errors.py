"""The one exception type that means "the user gave us something we cannot use".

The CLI turns a UserError into a single `error: ...` line on stderr and exit code 2; everything
else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input, bad file, bad configuration: report in one line, exit non-zero."""
