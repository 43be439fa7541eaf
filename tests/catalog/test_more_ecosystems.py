"""Ruby gems, PHP Composer, .NET deps.json and cargo-auditable Rust binaries, each read from a
rootfs laid out as the tool installs it; exact package lists, purls and advisory ecosystems.

Inputs: ``formatador.gemspec``, ``vendor/composer_2/installed.json`` and
``deps-with-referenceassembly/MyApp.deps.json`` are syft's test data (github.com/anchore/syft,
``syft/pkg/cataloger/{ruby,php,dotnet}/testdata/``, Apache-2.0), copied verbatim below (the
installed.json with its two packages' long ``suggest``/``support`` blocks kept). The
Composer 1 list and the stub-line gemspec follow the same tools' formats.

cargo-auditable: neither a binary built with it nor the tool can be had here (crates.io is not
reachable, so ``cargo install cargo-auditable`` fails). The test writes an ELF executable holding
a ``.dep-v0`` section in the format cargo-auditable documents (``PARSING.md``: the
zlib-compressed JSON ``{"packages": [{"name", "version", "source", "kind", "dependencies",
"root"}]}``). A second test puts that section into a real Rust executable built here with
``rustc`` (``objcopy --add-section``, the layout cargo-auditable's linker section ends up in).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest

from vigil.catalog import catalog_rootfs
from vigil.devtools.artifacts import elf_with_sections

FORMATADOR_GEMSPEC = """# frozen_string_literal: true
# -*- encoding: utf-8 -*-

Gem::Specification.new do |s|
  s.name = "formatador".freeze
  s.version = "1.0.0"

  s.authors = ["geemus".freeze]
  s.files = ["lib/formatador.rb".freeze]
  s.homepage = "https://github.com/geemus/#{s.name}".freeze
  s.licenses = ["MIT".freeze]
end
"""

# As RubyGems writes a stub spec for a gem with a native platform.
NOKOGIRI_GEMSPEC = """# -*- encoding: utf-8 -*-
# stub: nokogiri 1.15.4 x86_64-linux lib

Gem::Specification.new do |s|
  s.name = "nokogiri".freeze
  s.version = "1.15.4"
  s.platform = "x86_64-linux".freeze
  s.required_rubygems_version = Gem::Requirement.new(">= 0".freeze) if s.respond_to? :required_rubygems_version=
end
"""

COMPOSER_2_INSTALLED = {
    "packages": [
        {
            "name": "asm89/stack-cors",
            "version": "1.3.0",
            "version_normalized": "1.3.0.0",
            "source": {
                "type": "git",
                "url": "https://github.com/asm89/stack-cors.git",
                "reference": "b9c31def6a83f84b4d4a40d35996d375755f0e08",
            },
            "require": {
                "php": ">=5.5.9",
                "symfony/http-foundation": "~2.7|~3.0|~4.0|~5.0",
                "symfony/http-kernel": "~2.7|~3.0|~4.0|~5.0",
            },
            "time": "2019-12-24T22:41:47+00:00",
            "type": "library",
            "installation-source": "dist",
            "autoload": {"psr-4": {"Asm89\\Stack\\": "src/Asm89/Stack/"}},
            "license": ["MIT"],
            "install-path": "../asm89/stack-cors",
        },
        {
            "name": "behat/mink",
            "version": "v1.8.1",
            "version_normalized": "1.8.1.0",
            "require": {"php": ">=5.3.1", "symfony/css-selector": "^2.7|^3.0|^4.0|^5.0"},
            "time": "2020-03-11T15:45:53+00:00",
            "type": "library",
            "installation-source": "dist",
            "autoload": {"psr-4": {"Behat\\Mink\\": "src/"}},
            "license": ["MIT"],
            "install-path": "../behat/mink",
        },
    ],
    "dev": True,
    "dev-package-names": ["behat/mink"],
}

MYAPP_DEPS_JSON = """{
  "runtimeTarget": {
    "name": ".NETCoreApp,Version=v10.0",
    "signature": ""
  },
  "compilationOptions": {},
  "targets": {
    ".NETCoreApp,Version=v10.0": {
      "MyApp/1.0.0": {
        "dependencies": {
          "Newtonsoft.Json": "13.0.3",
          "Microsoft.AspNetCore.DataProtection": "10.0.0.0"
        },
        "runtime": {
          "MyApp.dll": {}
        }
      },
      "Newtonsoft.Json/13.0.3": {
        "runtime": {
          "lib/net6.0/Newtonsoft.Json.dll": {
            "assemblyVersion": "13.0.0.0",
            "fileVersion": "13.0.3.27908"
          }
        }
      },
      "Microsoft.AspNetCore.DataProtection/10.0.0.0": {
        "compile": {
          "Microsoft.AspNetCore.DataProtection.dll": {}
        }
      },
      "Microsoft.AspNetCore.DataProtection.Abstractions/10.0.0.0": {
        "compile": {
          "Microsoft.AspNetCore.DataProtection.Abstractions.dll": {}
        }
      }
    }
  },
  "libraries": {
    "MyApp/1.0.0": {
      "type": "project",
      "serviceable": false,
      "sha512": ""
    },
    "Newtonsoft.Json/13.0.3": {
      "type": "package",
      "serviceable": true,
      "sha512": "sha512-HrC5BXdl00IP9zeV+0Z848QWPAoCr9P3bDEZguI+gkLcBKAOxix/tLEAAHC+UvDNPv4a2d18lOReHMOagPa+zQ==",
      "path": "newtonsoft.json/13.0.3",
      "hashPath": "newtonsoft.json.13.0.3.nupkg.sha512"
    },
    "Microsoft.AspNetCore.DataProtection/10.0.0.0": {
      "type": "referenceassembly",
      "serviceable": false,
      "sha512": ""
    },
    "Microsoft.AspNetCore.DataProtection.Abstractions/10.0.0.0": {
      "type": "referenceassembly",
      "serviceable": false,
      "sha512": ""
    }
  }
}
"""

AUDIT_DATA = {
    "packages": [
        {"name": "adler", "version": "1.0.2", "source": "crates.io"},
        {"name": "cc", "version": "1.0.83", "source": "crates.io", "kind": "build"},
        {"name": "hello-auditable", "version": "0.1.0", "source": "local", "dependencies": [0, 1, 3, 4], "root": True},
        {"name": "miniz_oxide", "version": "0.4.4", "source": "crates.io", "dependencies": [0]},
        {"name": "private-crate", "version": "2.0.0", "source": "git"},
    ]
}


def write(root: Path, files: dict[str, bytes | str], mode: int = 0o644) -> None:
    for path, data in files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data.encode() if isinstance(data, str) else data)
        target.chmod(mode)


def rows(result, type_: str) -> list[tuple[str, str, str, str | None, str]]:
    return sorted((p.name, p.version, p.purl, p.ecosystem, p.found_in) for p in result.packages if p.type == type_)


def test_gems_from_their_specifications(tmp_path):
    specs = "/usr/local/bundle/specifications"
    write(
        tmp_path,
        {
            f"{specs}/formatador-1.0.0.gemspec": FORMATADOR_GEMSPEC,
            f"{specs}/nokogiri-1.15.4-x86_64-linux.gemspec": NOKOGIRI_GEMSPEC,
            "/usr/lib/ruby/gems/3.1.0/specifications/default/json-2.6.1.gemspec": "# stub: json 2.6.1 ruby lib\n",
            # as RubyGems 1.x wrote them
            "/var/lib/gems/1.8/specifications/rack-1.1.0.gemspec": "Gem::Specification.new do |s|\n"
            '  s.name = %q{rack}\n  s.version = "1.1.0"\nend\n',
            f"{specs}/broken.gemspec": "Gem::Specification.new do |s|\n  s.name = name_from_env\nend\n",
        },
    )
    result = catalog_rootfs(tmp_path)
    assert rows(result, "gem") == [
        ("formatador", "1.0.0", "pkg:gem/formatador@1.0.0", "RubyGems", f"{specs}/formatador-1.0.0.gemspec"),
        (
            "json",
            "2.6.1",
            "pkg:gem/json@2.6.1",
            "RubyGems",
            "/usr/lib/ruby/gems/3.1.0/specifications/default/json-2.6.1.gemspec",
        ),
        (
            "nokogiri",
            "1.15.4",
            "pkg:gem/nokogiri@1.15.4?platform=x86_64-linux",
            "RubyGems",
            f"{specs}/nokogiri-1.15.4-x86_64-linux.gemspec",
        ),
        ("rack", "1.1.0", "pkg:gem/rack@1.1.0", "RubyGems", "/var/lib/gems/1.8/specifications/rack-1.1.0.gemspec"),
    ]
    assert [str(w) for w in result.warnings] == [
        f"{specs}/broken.gemspec: gemspec skipped: no literal name and version assignment"
    ]


def test_composer_installed_json_both_formats(tmp_path):
    composer_1 = [{"name": "monolog/monolog", "version": "1.25.1", "type": "library"}, {"name": "no-version"}]
    write(
        tmp_path,
        {
            "/var/www/html/vendor/composer/installed.json": json.dumps(COMPOSER_2_INSTALLED, indent=4),
            "/srv/legacy/vendor/composer/installed.json": json.dumps(composer_1),
        },
    )
    result = catalog_rootfs(tmp_path)
    html, legacy = "/var/www/html/vendor/composer/installed.json", "/srv/legacy/vendor/composer/installed.json"
    assert rows(result, "composer") == [
        ("asm89/stack-cors", "1.3.0", "pkg:composer/asm89/stack-cors@1.3.0", "Packagist", html),
        ("behat/mink", "v1.8.1", "pkg:composer/behat/mink@v1.8.1", "Packagist", html),
        ("monolog/monolog", "1.25.1", "pkg:composer/monolog/monolog@1.25.1", "Packagist", legacy),
    ]
    assert {p.name: p.metadata["dev"] for p in result.packages} == {
        "asm89/stack-cors": False,
        "behat/mink": True,
        "monolog/monolog": False,
    }
    assert [str(w) for w in result.warnings] == [
        f"{legacy} [packages[1]]: package skipped: no string 'name' and 'version'"
    ]


def test_dotnet_deps_json_lists_its_nuget_packages(tmp_path):
    runtime = {
        "libraries": {
            "runtimepack.Microsoft.NETCore.App.Runtime.linux-x64/6.0.5": {"type": "runtimepack", "sha512": ""},
            "worker/1.0.0": {"type": "project"},
        }
    }
    write(tmp_path, {"/app/MyApp.deps.json": MYAPP_DEPS_JSON, "/srv/worker/worker.deps.json": json.dumps(runtime)})
    result = catalog_rootfs(tmp_path)
    assert result.warnings == []
    assert rows(result, "nuget") == [
        (
            "Microsoft.NETCore.App.Runtime.linux-x64",
            "6.0.5",
            "pkg:nuget/Microsoft.NETCore.App.Runtime.linux-x64@6.0.5",
            "NuGet",
            "/srv/worker/worker.deps.json",
        ),
        ("Newtonsoft.Json", "13.0.3", "pkg:nuget/Newtonsoft.Json@13.0.3", "NuGet", "/app/MyApp.deps.json"),
    ]


def test_cargo_auditable_dependencies_from_the_dep_v0_section(tmp_path):
    binary = elf_with_sections({".text": b"\x90" * 64, ".dep-v0": zlib.compress(json.dumps(AUDIT_DATA).encode())})
    plain = elf_with_sections({".text": b"\x90" * 64})
    write(tmp_path, {"/usr/local/bin/hello": binary, "/usr/local/bin/plain": plain}, mode=0o755)
    result = catalog_rootfs(tmp_path)
    assert result.warnings == []
    hello = "/usr/local/bin/hello"
    # local, git and build-time crates are not listed (see the cataloger's docstring)
    assert rows(result, "cargo") == [
        ("adler", "1.0.2", "pkg:cargo/adler@1.0.2", "crates.io", hello),
        ("miniz_oxide", "0.4.4", "pkg:cargo/miniz_oxide@0.4.4", "crates.io", hello),
    ]


def rust_tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path.home() / ".cargo" / "bin"))
    if found is None:
        pytest.fail(f"{name} is not installed (rustup or apt-get install rustc binutils)")
    return found


def test_a_real_rust_executable_with_the_section(tmp_path):
    (tmp_path / "hello.rs").write_text('fn main() { println!("hello"); }\n')
    exe = tmp_path / "root" / "usr" / "local" / "bin" / "hello"
    exe.parent.mkdir(parents=True)
    subprocess.run([rust_tool("rustc"), "-O", str(tmp_path / "hello.rs"), "-o", str(exe)], check=True, timeout=300)
    (tmp_path / "dep").write_bytes(zlib.compress(json.dumps(AUDIT_DATA).encode()))
    objcopy = shutil.which("objcopy") or pytest.fail("objcopy is not installed (apt-get install binutils)")
    subprocess.run(
        [
            objcopy,
            "--add-section",
            f".dep-v0={tmp_path / 'dep'}",
            "--set-section-flags",
            ".dep-v0=noload,readonly",
            str(exe),
        ],
        check=True,
        timeout=60,
    )
    result = catalog_rootfs(tmp_path / "root")
    assert result.warnings == []
    assert [(p.name, p.version, p.found_in) for p in result.packages] == [
        ("adler", "1.0.2", "/usr/local/bin/hello"),
        ("miniz_oxide", "0.4.4", "/usr/local/bin/hello"),
    ]


def test_hostile_inputs_are_warnings_naming_the_file(tmp_path):
    deep = b"[" * 100_000 + b"]" * 100_000
    bomb = zlib.compress(b"{" + b" " * (80 << 20) + b"}", 9)
    write(
        tmp_path,
        {
            "/app/deep.deps.json": deep,
            "/app/vendor/composer/installed.json": b'{"packages": [',
            "/gems/specifications/huge.gemspec": b"#" * ((1 << 20) + 1),
        },
    )
    write(
        tmp_path,
        {
            "/bin/bomb": elf_with_sections({".dep-v0": bomb}),
            "/bin/badzlib": elf_with_sections({".dep-v0": b"not zlib"}),
            "/bin/truncated": elf_with_sections({".dep-v0": b"x"})[:70],
        },
        mode=0o755,
    )
    result = catalog_rootfs(tmp_path)
    ours = sorted(
        str(w)
        for w in result.warnings
        if w.file in {"/app/deep.deps.json", "/app/vendor/composer/installed.json", "/gems/specifications/huge.gemspec"}
        or "dep-v0" in (w.entry or "")
    )
    assert ours == [
        "/app/deep.deps.json: deps.json skipped: nested deeper than 64 levels, not parsed",
        "/app/vendor/composer/installed.json: installed.json skipped: not valid JSON "
        "(Expecting value: line 1 column 15 (char 14))",
        "/bin/badzlib [.dep-v0]: cargo-auditable dependencies skipped: not read (Error -3 while decompressing data: "
        "incorrect header check)",
        f"/bin/bomb [.dep-v0]: cargo-auditable dependencies skipped: not read (inflates past {64 << 20} bytes)",
        "/gems/specifications/huge.gemspec: gemspec skipped: /gems/specifications/huge.gemspec: larger than "
        f"{1 << 20} bytes, not read into memory",
    ]
    assert result.packages == []
    # none of them could be read: listed among the scan's unread files, the scan incomplete
    assert result.unread == [
        "/app/deep.deps.json",
        "/app/vendor/composer/installed.json",
        "/bin/badzlib",
        "/bin/bomb",
        "/gems/specifications/huge.gemspec",
    ]
    assert result.incomplete is True
