"""The one exception type the library raises for bad input.

Its message is a single line that says what was wrong and what to do. The command line prints it as
``error: <message>`` and exits with status 2; notebooks show it as an ordinary exception.
"""


class UnlearnError(ValueError):
    """Bad input to unlearnlib: the message says what to do (defined for every chapter)."""
