"""Exceptions shared by every stage of the pipeline."""


class InputError(ValueError):
    """Bad input from a user: the message names the offending value and the accepted range.

    The command line turns it into one line on stderr and exit code 2, never a traceback.
    """
