"""The project's error types: each message is one line naming the file, line or field at fault.

Entry points turn any `TfnetError` into a one-line `error: ...` and a non-zero exit.
"""


class TfnetError(ValueError):
    """Base of every user-facing error."""


class DataError(TfnetError):
    """Bad input data. The message names the file and the line or field at fault."""


class ConfigError(TfnetError):
    """A bad configuration value. The message names the field and the allowed values."""


class RunDirError(TfnetError):
    """A run dir that holds a different run (another config), or cannot be written."""


class TrainingError(TfnetError):
    """Training cannot go on (e.g. a non-finite loss); the message says what to change."""
