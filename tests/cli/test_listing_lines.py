"""Every `--output` also answers to `-o`, and `vigil intel query` keeps each vulnerability on one table line
(the summary cut with "…"; whole in -o json)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from vigil.cli import build_app

runner = CliRunner()

LONG_SUMMARY = (
    "Jinja2 sandbox escape through the format method of strings:\n"
    "a template author who controls the content of a template can execute arbitrary Python code "
    "regardless of the sandbox, which users of the sandboxed environment rely on to render untrusted templates."
)


def _output_options() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}

    def walk(command, prefix: tuple[str, ...]) -> None:
        for param in command.params if prefix else ():
            if "--output" in param.opts:
                found[" ".join(prefix)] = list(param.opts)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, (*prefix, name))

    walk(typer.main.get_command(build_app()), ())
    return found


def test_every_output_option_has_the_short_flag():
    options = _output_options()
    assert {"get", "scan", "intel query", "sensor", "token list"} <= set(options)
    assert {command: opts for command, opts in options.items() if "-o" not in opts} == {}


def test_intel_query_keeps_one_line_per_vulnerability(tmp_path: Path):
    records = tmp_path / "osv"
    records.mkdir()
    (records / "GHSA-jjjj-0000-0001.json").write_text(
        json.dumps(
            {
                "id": "GHSA-jjjj-0000-0001",
                "modified": "2024-03-01T00:00:00Z",
                "summary": LONG_SUMMARY,
                "affected": [
                    {
                        "package": {"ecosystem": "PyPI", "name": "jinja2"},
                        "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.10.1"}]}],
                    }
                ],
            }
        )
    )
    db = str(tmp_path / "intel.db")
    app = build_app()
    assert runner.invoke(app, ["intel", "import", str(records), "--db", db]).exit_code == 0
    query = ["intel", "query", "--ecosystem", "PyPI", "--package", "jinja2", "--version", "2.10", "--db", db]
    table = runner.invoke(app, query, env={"COLUMNS": "80"})
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0] == "PyPI jinja2 2.10: 1 vulnerabilities"
    assert len(lines) == 3 and lines[2].startswith("GHSA-jjjj-0000-0001")
    assert lines[2] == "GHSA-jjjj-0000-0001  unknown   2.10.1  -        Jinja2 sandbox escape through t…"
    doc = json.loads(runner.invoke(app, [*query, "-o", "json"]).stdout)
    assert [v["summary"] for v in doc["vulnerabilities"]] == [LONG_SUMMARY]


def test_intel_query_never_cuts_ids_versions_or_levels_to_fit(shared_data: Path, tmp_path: Path):
    # Jinja2 2.10's two PyPA advisories: their aliases and summaries are wider than an 80-column terminal.
    db = str(tmp_path / "intel.db")
    app = build_app()
    imported = runner.invoke(app, ["intel", "import", str(shared_data / "osv" / "pypa" / "jinja2"), "--db", db])
    assert imported.exit_code == 0, imported.output
    query = ["intel", "query", "--ecosystem", "PyPI", "--package", "jinja2", "--version", "2.10", "--db", db]
    at_80 = runner.invoke(app, query, env={"COLUMNS": "80"})
    assert at_80.stdout.splitlines() == [
        "PyPI jinja2 2.10: 2 vulnerabilities",
        "ID              SEVERITY  FIXED   ALIASES                 SUMMARY               ",
        "CVE-2019-10906  unknown   2.10.1  GHSA-462w-v97r-4m45, …  In Pallets Jinja befo…",
        "CVE-2020-28493  unknown   2.11.3  GHSA-g3rq-g295-4j3m, …  This affects the pack…",
    ]
    # Narrower than the ids, levels and versions need: the line runs past the terminal, nothing is dropped.
    at_40 = runner.invoke(app, query, env={"COLUMNS": "40"})
    assert at_40.stdout.splitlines()[2] == "CVE-2019-10906  unknown   2.10.1  GHSA-462w-v…  In Pallets …"
