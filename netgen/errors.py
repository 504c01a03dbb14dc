"""The one exception type the CLI turns into a one-line message and exit code 2."""


class NetgenError(Exception):
    """A problem with the user's input or files, reported without a traceback.

    Anything else that escapes is a bug in netgen, so only this type is caught by the CLI.
    """


def first_line(exc: BaseException) -> str:
    """An exception's message cut to one line, for one-line errors built from library errors."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
