"""Pure rules about what a process executes: interpreter scripts and mapped libraries."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SHELLS = re.compile(r"(?:ba|da|a|z|k|mk|y)?sh\Z")
_PYTHON = re.compile(r"python(?:\d+(?:\.\d+)*)?\Z")
_OTHER = re.compile(r"(?:perl|ruby|node|nodejs|php|lua(?:\d(?:\.\d)?)?|Rscript|tclsh|awk|gawk|mawk)\Z")
# Per interpreter family: short options that mean "inline program, no script file",
# and short options that take a value (attached or as the next argument).
_INLINE = {"shell": "c", "python": "cm", "other": "eE"}
_TAKES_VALUE = {"shell": "oO", "python": "WXQ", "other": "IrCx"}
_LONG_TAKES_VALUE = {"--rcfile", "--init-file", "--require"}


def interpreter_family(exe_path: str, argv0: str | None = None) -> str | None:
    """'shell', 'python' or 'other' when the executable is a script interpreter, else None.

    busybox answers to the name it was called by, so argv[0] decides for it.
    """
    name = exe_path.rsplit("/", 1)[-1]
    if name == "busybox" and argv0:
        name = argv0.rsplit("/", 1)[-1]
    if _SHELLS.match(name):
        return "shell"
    if _PYTHON.match(name):
        return "python"
    if _OTHER.match(name):
        return "other"
    return None


def script_from_argv(exe_path: str, argv: list[str]) -> str | None:
    """The script an interpreter was asked to run, from its argv; None for inline code (-c, -e, -m).

    ``python3 -u /app/x.py a`` -> /app/x.py; ``sh -c 'echo'`` -> None; ``sh -x run.sh`` -> run.sh.
    """
    family = interpreter_family(exe_path, argv[0] if argv else None)
    if family is None or len(argv) < 2:
        return None
    inline, takes_value = _INLINE[family], _TAKES_VALUE[family]
    args = iter(argv[1:])
    for arg in args:
        if arg == "--":
            return next(args, None)
        if arg in ("-", "-s"):
            return None  # program from standard input
        if arg.startswith("--"):
            if arg in _LONG_TAKES_VALUE:
                next(args, None)
            continue
        if arg[0] in "-+" and len(arg) > 1:
            for i, letter in enumerate(arg[1:], start=1):
                if letter in inline:
                    return None
                if letter in takes_value:
                    if i == len(arg) - 1:
                        next(args, None)
                    break
            continue
        return arg
    return None


@dataclass(frozen=True)
class Mapping:
    start: int
    end: int
    perms: str
    dev: str
    inode: int
    path: str

    @property
    def map_files_name(self) -> str:
        return f"{self.start:x}-{self.end:x}"


def parse_maps(text: str) -> list[Mapping]:
    """Lines of /proc/<pid>/maps."""
    out = []
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 5:
            continue
        lo, _, hi = parts[0].partition("-")
        out.append(
            Mapping(int(lo, 16), int(hi, 16), parts[1], parts[3], int(parts[4]), parts[5] if len(parts) > 5 else "")
        )
    return out


def executable_file_mappings(maps: list[Mapping], exe_inode: int | None = None) -> list[Mapping]:
    """One mapping per file mapped executable, other than the program itself: its shared libraries.

    Deleted files and memfds stay in (path '/memfd:NAME (deleted)'): they are
    the suspicious ones, and /proc/<pid>/map_files can still read them.
    Anonymous and special mappings ([vdso]) are not files and are left out.
    """
    seen: set[tuple[str, int]] = set()
    out = []
    for m in maps:
        if "x" not in m.perms or not m.path.startswith("/") or m.inode == 0:
            continue
        if exe_inode is not None and m.inode == exe_inode:
            continue
        key = (m.dev, m.inode)
        if key in seen:
            continue
        seen.add(key)
        out.append(m)
    return out
