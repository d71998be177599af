"""One exception tree for the whole project.

    ComposeNetError                 base; the CLI catches only this (anything else is a bug)
    ├── ConfigError                 bad input: one problem at FILE:LINE: key.path; exit status 2
    ├── ConfigErrors                several ConfigError at once (the loader reports every problem)
    ├── PlanError                   the file is valid but cannot be planned here (pools exhausted,
    │                               missing parent interface, kernel lacks ipvlan): exit status 2
    └── RuntimeFailure              the kernel or the host refused something during up/down: exit 1
        ├── OpFailed                one op failed: names the op and the kernel's error
        ├── StateError              the journal/state directory is unreadable or locked
        └── DownErrors              down went on after errors; carries all of them

Warnings are not exceptions: loader stages return them as ConfigWarning values.
"""

from __future__ import annotations

from dataclasses import dataclass


class ComposeNetError(Exception):
    exit_status = 1


def one_line(text: str) -> str:
    """`text` with every character that is not printable escaped (\\n, \\x1b, \\u2028): a
    problem is one line however hostile the value it names, and a terminal shows it as written."""
    if text.isprintable():
        return text

    def escape(ch: str) -> str:
        if ch.isprintable():
            return ch
        special = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch)
        if special:
            return special
        code = ord(ch)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"

    return "".join(escape(ch) for ch in text)


@dataclass(frozen=True)
class Where:
    """A location in the user's input: file, 1-based line (0 when unknown) and dotted key path."""

    file: str
    line: int
    keypath: str

    def prefix(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}: {self.keypath}"
        return f"{self.file}: {self.keypath}" if self.keypath else self.file


class ConfigError(ComposeNetError):
    exit_status = 2

    def __init__(self, file: str, line: int, keypath: str, message: str):
        self.where = Where(file, line, keypath)
        self.message = message
        super().__init__(str(self))

    @property
    def file(self) -> str:
        return self.where.file

    @property
    def line(self) -> int:
        return self.where.line

    @property
    def keypath(self) -> str:
        return self.where.keypath

    def __str__(self) -> str:
        return one_line(f"{self.where.prefix()}: {self.message}")


class ConfigErrors(ComposeNetError):
    """Every problem found by a stage, sorted by file and line."""

    exit_status = 2

    def __init__(self, errors: list[ConfigError]):
        self.errors = sorted(errors, key=lambda e: (e.file, e.line, e.keypath, e.message))
        super().__init__("\n".join(str(e) for e in self.errors))


@dataclass(frozen=True)
class ConfigWarning:
    where: Where
    message: str

    def __str__(self) -> str:
        return one_line(f"{self.where.prefix()}: warning: {self.message}")


class PlanError(ComposeNetError):
    """`where` (optional) points at the part of the file that cannot be planned here; then the
    error reads like a ConfigError: FILE:LINE: key.path: message."""

    exit_status = 2

    def __init__(self, message: str, where: "Where | None" = None):
        self.where = where
        self.message = message
        super().__init__(one_line(f"{where.prefix()}: {message}" if where is not None else message))


class RuntimeFailure(ComposeNetError):
    exit_status = 1


class OpFailed(RuntimeFailure):
    def __init__(self, seq: int, description: str, reason: str):
        self.seq = seq
        self.description = description
        self.reason = reason
        super().__init__(f"op {seq} failed: {description}: {reason}")


class StateError(RuntimeFailure):
    pass


class DownErrors(RuntimeFailure):
    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("down finished with errors:\n" + "\n".join(errors))
