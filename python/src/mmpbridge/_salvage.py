"""mmpbridge.salvage: what ``mmpconv salvage --json`` does."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from . import StrPath

from . import _lib


def salvage(src: StrPath, dst: StrPath, force: bool = False, profile: Literal["portable", "mmappickle"] = "portable",
            align: int = 64) -> dict[str, Any]:
    """Save what can be saved of a damaged mmappickle file.

    mmapdict and pickle.load refuse a damaged file whole. salvage reads src
    and copies into the new file dst every live entry that parses exactly,
    decodes on its own and verifies as plain data (numpy arrays, masked
    arrays, numpy scalars, builtin values; an entry that uses another
    entry's memo slots, or builds anything else, is not copied). Nothing is
    unpickled or run. After damaged bytes it goes on at the next entry that
    parses exactly. Damage inside an array's data or a string's bytes cannot
    be seen (the format has no checksums) and is copied as it is.

    dst appears whole or not at all; an existing dst is refused (OSError)
    unless force. profile and align are those of mmpconv convert.

    Returns the report as a dict: "ok" (nothing lost), "saved" (a list of
    {"key", "offset", "size"}), "lost" (a list of {"key", "offset", "size",
    "cause"}, key None for bytes where no entry could be read), and
    "header_ok", "terminator", "skipped", "replaced". Raises FormatError
    when src has neither an mmappickle header nor any entry, ValueError
    for bad options or when src and dst are the same file,
    FileNotFoundError for a missing src, OSError for other
    failures to read src or write dst.
    """
    opts = {"force": bool(force), "profile": str(profile), "align": int(align)}
    return _lib.salvage(os.fsdecode(os.fspath(src)), os.fsdecode(os.fspath(dst)), opts)
