"""Stage 2a: `.env` files as Compose reads them.

- blank lines and lines starting with `#` are skipped; an `export ` prefix is allowed;
- unquoted values are trimmed and a ` #` (whitespace then #) starts a comment;
- 'single quotes' are literal; "double quotes" may span lines and understand \\n \\t \\r \\\\ \\" \\$;
- unquoted and double-quoted values are interpolated with the variables known so far
  (the shell environment first, then earlier lines of the file);
- a bare `KEY` takes its value from the environment when set there.
"""

from __future__ import annotations

import re
from typing import Mapping

from compose_net.errors import ConfigError
from compose_net.loader import inputs
from compose_net.loader.interpolate import TemplateError, substitute

_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "$": "$$", "'": "'"}


def parse_dotenv(text: str, file: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """KEY → value for one env file. Raises ConfigError (file, line, key) on malformed lines."""
    environ = environ or {}
    result: dict[str, str] = {}

    def lookup(name: str):
        if name in environ:
            return environ[name]
        return result.get(name)

    lines = text.replace("\r\n", "\n").split("\n")
    i = 0
    while i < len(lines):
        lineno = i + 1
        raw = lines[i]
        i += 1
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export ") or line.startswith("export\t"):
            line = line[7:].lstrip()
        if "=" not in line:
            key = line
            if not _KEY_RE.match(key):
                raise ConfigError(file, lineno, key or "(line)", "expected KEY=VALUE")
            if key in environ:
                result[key] = environ[key]
            continue
        key, _, raw_rest = line.partition("=")
        key = key.strip()
        if not _KEY_RE.match(key):
            raise ConfigError(file, lineno, key or "(line)", f"invalid variable name {key!r}")
        rest = raw_rest.lstrip()
        if rest.startswith("'"):
            end = rest.find("'", 1)
            buf = rest
            while end < 0 and i < len(lines):
                buf += "\n" + lines[i]
                i += 1
                end = buf.find("'", 1)
            if end < 0:
                raise ConfigError(file, lineno, key, "unterminated single-quoted value")
            result[key] = buf[1:end]
            continue
        if rest.startswith('"'):
            buf = rest
            value, end = _double_quoted(buf)
            while end < 0 and i < len(lines):
                buf += "\n" + lines[i]
                i += 1
                value, end = _double_quoted(buf)
            if end < 0:
                raise ConfigError(file, lineno, key, "unterminated double-quoted value")
        else:
            value = re.split(r"\s#", raw_rest, maxsplit=1)[0].strip()
        try:
            result[key] = substitute(value, lookup, lambda name: None)
        except TemplateError as e:
            raise ConfigError(file, lineno, key, str(e)) from None
    return result


def _double_quoted(buf: str) -> tuple[str, int]:
    """The body of a double-quoted value starting at buf[0] == '"', with escapes applied
    (`\\$` kept as `$$` so interpolation leaves a literal `$`), and the closing quote's index."""
    out = []
    i = 1
    while i < len(buf):
        c = buf[i]
        if c == "\\" and i + 1 < len(buf):
            nxt = buf[i + 1]
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
            continue
        if c == '"':
            return "".join(out), i
        if c == "$" and i + 1 < len(buf) and buf[i + 1] == "$":
            out.append("$$")
            i += 2
            continue
        out.append(c)
        i += 1
    return "", -1


def read_dotenv(path: str, display: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    inputs.note(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(1024 * 1024 + 1)
    except FileNotFoundError:
        raise ConfigError(display, 0, "", "env file not found") from None
    except OSError as e:
        raise ConfigError(display, 0, "", f"cannot read env file: {e.strerror or e}") from None
    if len(raw) > 1024 * 1024:
        raise ConfigError(display, 0, "", "env file is larger than 1 MiB")
    if b"\x00" in raw:
        raise ConfigError(display, 0, "", "binary env file (NUL bytes)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(display, 0, "", "env file is not valid UTF-8") from None
    return parse_dotenv(text.lstrip("\ufeff"), display, environ)
