"""Errors raised while reading or writing checkpoint files; every message names the file."""


class CheckpointError(ValueError):
    """A file could not be read as a network checkpoint (unknown format, corrupt, inconsistent)."""

    def __init__(self, path, problem):
        self.path = str(path)
        self.problem = problem
        super().__init__(f'{self.path}: {problem}')


class UnsafePickleError(CheckpointError):
    """The file's pickle names a global outside the allowlist; nothing from it was called."""


class ExportError(ValueError):
    """A network cannot be written in the requested format (e.g. a channel table the layout cannot hold);
    raised before anything is written."""
