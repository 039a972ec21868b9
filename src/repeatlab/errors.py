"""The one base class of bad-input errors.

``RepeatlabError`` marks a problem the user can fix (a setting, a file, a combination of options): the CLI prints
its message as one line and exits with status 2. Any other exception is a bug, in repeatlab or in a library it
calls, and keeps its traceback. It subclasses ``ValueError`` so that code catching ``ValueError`` keeps working.
"""

from __future__ import annotations


class RepeatlabError(ValueError):
    """Bad input, named with its fix; the CLI shows the message, not a traceback."""


__all__ = ["RepeatlabError"]
