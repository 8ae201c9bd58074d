"""The one exception type that means "the user gave us something we cannot use".

The CLI turns a UserError into a single `error: ...` line on stderr and exit code 2; everything
else is a bug and keeps its traceback.

Messages speak the library's names: an option is named as its config field, in backquotes (`skip_step`), so a
notebook user reads the argument to change. The CLI, whose flags are generated from those fields, shows the
flag instead (`--skip-step`; `cli.in_flag_names`).
"""


class UserError(Exception):
    """Bad input, bad file, bad configuration: report in one line, exit non-zero."""


def named(name: str) -> str:
    """How a message names option `name`: a field name in backquotes, a phrase ("parameter skip_step") as it is."""
    return f"`{name}`" if name.isidentifier() else name
