"""`vigil demo`: run the whole pipeline on this machine and open the console on it."""

from __future__ import annotations

import enum
import logging
import signal
import tempfile
import threading
from pathlib import Path

import orjson
import typer
from rich.console import Console

from vigil.cli_paths import output_dir
from vigil.devtools.demo import Demo, DemoError
from vigil.service.logs import JsonFormatter

err = Console(stderr=True)
out = Console()


class DemoOutput(str, enum.Enum):
    text = "text"
    json = "json"


def demo(
    port: int = typer.Option(8080, "--port", min=1, max=65535, help="Port for the service and console"),
    work_dir: Path = typer.Option(
        None, "--work-dir", help="Where the demo keeps its registry, store and files [default: a new temp dir]"
    ),
    wait: float = typer.Option(180.0, "--wait", min=1, help="Seconds to wait for every demo finding to appear"),
    exit_when_ready: bool = typer.Option(
        False,
        "--exit-when-ready",
        help="Stop once every expected finding has appeared, runtime ones too when that part runs (for scripts)",
    ),
    output: DemoOutput = typer.Option(
        DemoOutput.text, "--output", "-o", help="text or json (json: one summary object, for scripts)"
    ),
) -> None:
    """Run registry, test Kubernetes API, service, scanner and controller here (and containerd with the sensor
    where the machine allows), with findings of every kind."""
    work = output_dir(work_dir, "--work-dir") if work_dir else Path(tempfile.mkdtemp(prefix="vigil-demo-"))
    # The parts log as JSON lines to a file, so the terminal shows only the demo's own progress
    # (expected failures, such as pulls of the image that was deleted, go there too).
    handler = logging.FileHandler(work / "vigil.log")
    handler.setFormatter(JsonFormatter())
    logging.getLogger().handlers[:] = [handler]
    logging.getLogger().setLevel(logging.INFO)
    d = Demo(work=work, port=port)
    say = (lambda m: err.print(f"[dim]demo:[/] {m}")) if output is DemoOutput.text else (lambda m: None)
    try:
        d.start(say)
        token = d.admin_token
        if output is DemoOutput.text:
            out.print(f"Console: [bold]{d.url}/[/]   admin token: {token}", soft_wrap=True, highlight=False)
            say("waiting for the pipeline to compute findings ...")
        found = d.wait_for_findings(token, wait)
        runtime = {"ran": d.runtime is not None, "reason": d.runtime_off}
        if d.runtime is not None:
            runtime |= {"pod_uid": d.runtime.pod_uid, "container_id": f"containerd://{d.runtime.container_id}"}
        if output is DemoOutput.json:
            print(
                orjson.dumps(
                    {"url": d.url, "token": token, "findings": found, "runtime": runtime, "work_dir": str(work)}
                ).decode()
            )
        else:
            out.print("Findings: " + ", ".join(f"{k} {v}" for k, v in sorted(found.items())))
            if d.runtime is not None:
                out.print("Runtime part: ran (containerd, the toolbox pod's container, vigil sensor)")
            else:
                out.print(f"Runtime part: off ({d.runtime_off})", highlight=False)
            out.print(f"Logs: {work / 'vigil.log'}")
        if exit_when_ready:
            return
        # stdout carries only the JSON summary in json mode, so this goes to stderr there.
        (out if output is DemoOutput.text else err).print("Running; Ctrl-C stops the demo.")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    except DemoError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    finally:
        d.stop()
