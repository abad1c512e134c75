"""The error data loaders raise when a data set or folder is missing (chapter 3)."""


class DataNotFoundError(FileNotFoundError, ValueError):
    """A data set or folder is not where it was looked for (chapter 3).

    Both a FileNotFoundError and a ValueError, so either kind of handler catches it.
    """
