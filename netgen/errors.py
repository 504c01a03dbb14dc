"""The one exception type the CLI turns into a one-line message and exit code 2."""


class NetgenError(Exception):
    """A problem with the user's input or files, reported without a traceback.

    Anything else that escapes is a bug in netgen, so only this type is caught by the CLI.
    """


def first_line(exc: BaseException) -> str:
    """An exception's message cut to one line, for one-line errors built from library errors."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class InputShapeNeeded(NetgenError):
    """A prototxt whose data layer does not tell the input size, and nothing else tells it.

    The library does not know which option (if any) the caller offers for the shape, so the
    message says only what is missing; a command that has an option for it names it with
    `with_hint`, so that no message suggests an option the command lacks.
    """

    def __init__(self, reason: str, alternative: bool = False):
        self.reason = reason
        self.alternative = alternative  # the reason already names one remedy (install h5py)
        super().__init__(f"{reason}; {'or ' if alternative else ''}give the input shape "
                         "explicitly")

    def with_hint(self, option: str) -> NetgenError:
        """The same error naming the caller's option, e.g. `--input-shape N,C,H,W`."""
        return NetgenError(f"{self.reason}; {'or ' if self.alternative else ''}give it with "
                           f"{option}")
