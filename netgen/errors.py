"""The one exception type the CLI turns into a one-line message and exit code 2."""


class NetgenError(Exception):
    """A problem with the user's input or files, reported without a traceback.

    Anything else that escapes is a bug in netgen, so only this type is caught by the CLI.
    """
