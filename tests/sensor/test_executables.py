from __future__ import annotations

import pytest

from vigil.sensor.executables import Mapping, executable_file_mappings, interpreter_family, parse_maps, script_from_argv


@pytest.mark.parametrize(
    "exe, argv, script",
    [
        ("/usr/bin/python3.11", ["python3", "/app/main.py", "--port", "80"], "/app/main.py"),
        ("/usr/bin/python3", ["python3", "-u", "-W", "ignore", "x.py"], "x.py"),
        ("/usr/bin/python3", ["python3", "-Wignore::DeprecationWarning", "x.py"], "x.py"),
        ("/usr/bin/python3", ["python3", "-c", "print(1)"], None),
        ("/usr/bin/python3", ["python3", "-m", "http.server"], None),
        ("/usr/bin/python3", ["python3"], None),
        ("/usr/bin/python3", ["python3", "-"], None),
        ("/bin/bash", ["bash", "-x", "/tmp/run.sh", "a"], "/tmp/run.sh"),
        ("/bin/bash", ["bash", "-o", "pipefail", "/tmp/run.sh"], "/tmp/run.sh"),
        ("/bin/bash", ["bash", "--rcfile", "/etc/rc", "s.sh"], "s.sh"),
        ("/bin/dash", ["sh", "-c", "echo hi"], None),
        ("/bin/dash", ["sh", "-ec", "echo hi"], None),
        ("/bin/dash", ["sh", "--", "-weird.sh"], "-weird.sh"),
        ("/bin/busybox", ["sh", "/tmp/x.sh"], "/tmp/x.sh"),
        ("/bin/busybox", ["ls", "/tmp"], None),
        ("/usr/bin/perl", ["perl", "-w", "-I", "/lib", "tool.pl"], "tool.pl"),
        ("/usr/bin/perl", ["perl", "-e", "print 1"], None),
        ("/usr/bin/node", ["node", "--inspect", "server.js"], "server.js"),
        ("/usr/bin/ls", ["ls", "/tmp"], None),
        ("/usr/bin/shred", ["shred", "f"], None),
    ],
)
def test_script_from_argv(exe: str, argv: list[str], script: str | None) -> None:
    assert script_from_argv(exe, argv) == script


def test_interpreter_family() -> None:
    assert interpreter_family("/bin/bash") == "shell"
    assert interpreter_family("/usr/bin/python3.12") == "python"
    assert interpreter_family("/usr/bin/ruby") == "other"
    assert interpreter_family("/bin/busybox", "ash") == "shell"
    assert interpreter_family("/usr/bin/ssh") is None


MAPS = """55d0c2a00000-55d0c2a04000 r--p 00000000 fe:00 260099 /usr/bin/cat
55d0c2a04000-55d0c2a09000 r-xp 00004000 fe:00 260099 /usr/bin/cat
7f1e4c000000-7f1e4c021000 rw-p 00000000 00:00 0
7f1e4c228000-7f1e4c24e000 r--p 00000000 fe:00 262020 /usr/lib/x86_64-linux-gnu/libc.so.6
7f1e4c24e000-7f1e4c3a3000 r-xp 00026000 fe:00 262020 /usr/lib/x86_64-linux-gnu/libc.so.6
7f1e4c3f6000-7f1e4c3f7000 r-xp 00001000 fe:00 262001 /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
7f1e4c3f8000-7f1e4c3f9000 r-xp 00000000 00:05 1234 /memfd:payload (deleted)
7ffd5b1d2000-7ffd5b1d4000 r-xp 00000000 00:00 0                          [vdso]
7f1e4c500000-7f1e4c501000 r-xp 00000000 fe:00 999 /tmp/evil.so (deleted)
"""


def test_executable_file_mappings() -> None:
    maps = parse_maps(MAPS)
    assert maps[2].path == "" and maps[7].path == "[vdso]"
    libs = executable_file_mappings(maps, exe_inode=260099)
    assert [(m.path, m.map_files_name) for m in libs] == [
        ("/usr/lib/x86_64-linux-gnu/libc.so.6", "7f1e4c24e000-7f1e4c3a3000"),
        ("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "7f1e4c3f6000-7f1e4c3f7000"),
        ("/memfd:payload (deleted)", "7f1e4c3f8000-7f1e4c3f9000"),
        ("/tmp/evil.so (deleted)", "7f1e4c500000-7f1e4c501000"),
    ]
    assert isinstance(libs[0], Mapping) and libs[0].inode == 262020
