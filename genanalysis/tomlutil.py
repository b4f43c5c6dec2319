"""Reading TOML spec files (study, training-set and fit specs): one reader, one set of
messages. A file that cannot be read or parsed is one :class:`InputError` line naming the
kind of spec, the path and the reason."""

from __future__ import annotations

import tomllib
from pathlib import Path

from genanalysis.exceptions import InputError

__all__ = ["read_toml"]


def read_toml(path, what: str) -> dict:
    """The table of the TOML file ``path``; ``what`` names the spec in messages (e.g.
    ``"study spec"``)."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"cannot read {what} {str(path)!r}: it is a directory, not a TOML file")
    if not path.exists():
        raise InputError(f"cannot read {what} {str(path)!r}: it does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise InputError(f"cannot read {what} {str(path)!r}: {reason}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{what} {str(path)!r} is not valid TOML: {exc}") from None
