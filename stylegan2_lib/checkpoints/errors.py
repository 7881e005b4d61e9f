"""Errors raised while reading or writing checkpoint files; every message names the file."""


class CheckpointError(ValueError):
    """A file could not be read as a network checkpoint (unknown format, corrupt, inconsistent)."""

    MAX_PROBLEM = 500       # characters: names from a hostile file can be long or hold newlines

    def __init__(self, path, problem):
        self.path = str(path)
        text = ' '.join(str(problem).split())           # one line, whatever text the file supplied
        self.problem = text if len(text) <= self.MAX_PROBLEM else text[: self.MAX_PROBLEM] + '...'
        super().__init__(f'{self.path}: {self.problem}')


class UnsafePickleError(CheckpointError):
    """The file's pickle names a global outside the allowlist; nothing from it was called."""


class ExportError(ValueError):
    """A network cannot be written in the requested format (e.g. a channel table the layout cannot hold);
    raised before anything is written."""
