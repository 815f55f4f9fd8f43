"""The error hierarchy. Library code raises these; only cli.py turns them into exit codes."""

from __future__ import annotations

from pathlib import Path


def first_line(text: str, limit: int = 300) -> str:
    """The first non-blank line of a message, cut to `limit` characters: what a one-line error
    quotes of another library's (often many-line) message."""
    return (text.strip().splitlines() or [""])[0][:limit]


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a run or a sweep after it saved what it had; the command that
    continues it. A KeyboardInterrupt still, so that whatever stops on Ctrl-C stops on it."""

    run_dir: Path | None = None  # the run folder it left, recorded as stopped

    def __init__(self, *args: object, resume_hint: str) -> None:
        super().__init__(*args)  # the signal's name, when a signal stopped it
        self.resume_hint = resume_hint


class MlpError(Exception):
    """An error the user can fix: printed as one short message, never a traceback."""

    exit_code = 2
    run_dir: Path | None = None  # a run folder that recorded how it ended, when training did


class ConfigError(MlpError):
    """A config key, value or override is wrong."""


class DataError(MlpError):
    """A data file, column or value is wrong."""


class CheckpointError(MlpError):
    """A model file or checkpoint is missing, damaged or not one of ours."""


class RunError(MlpError):
    """A run folder cannot be created or used as asked."""


class WriteError(MlpError):
    """A file could not be written: the disk is full, the folder is read-only, ...

    The work failed rather than the request (exit 1); what was on disk before is left intact.
    """

    exit_code = 1


class TrainingError(MlpError):
    """The work itself failed (for example the loss diverged)."""

    exit_code = 1
