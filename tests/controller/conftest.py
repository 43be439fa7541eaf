"""Fixtures for controller tests: the test API server, a controller run in a thread, inventories."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vigil.devtools.kubeapi import KubeAPIServer

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "k8s"


def k8s_objects(folder: str) -> dict[str, dict]:
    path = DATA / folder
    if not path.is_dir():
        pytest.skip(f"shared Kubernetes test objects missing at {path}")
    return {p.name: json.loads(p.read_text()) for p in sorted(path.glob("*.json"))}


@pytest.fixture
def kubeapi():
    with KubeAPIServer(bookmark_interval=0.5, history_size=200) as server:
        yield server


class RunningController:
    """A real controller (vigil.kube -> the test API server; httpx -> the service) in its own thread."""

    def __init__(
        self,
        kubeconfig: Path,
        service_url: str,
        credential_file: Path,
        registration_token: str | None,
        cluster_name: str | None,
        **settings: Any,
    ) -> None:
        from vigil.controller.runner import ControllerSettings

        self.kubeconfig = kubeconfig
        self.service_url = service_url
        self.credential_file = credential_file
        self.registration_token = registration_token
        self.cluster_name = cluster_name
        self.settings = ControllerSettings(
            **{"batch_interval": 0.2, "heartbeat_interval": 1.0, "page_size": 3, **settings}
        )
        self.controller = None
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="controller", daemon=True)

    def _run(self) -> None:
        from vigil.controller.cli import obtain_credential
        from vigil.controller.kube import KubeApi, load_config
        from vigil.controller.runner import Controller
        from vigil.controller.service_client import InventoryService

        async def main() -> None:
            cred = await obtain_credential(
                self.service_url, self.credential_file, self.registration_token, self.cluster_name, True
            )
            api = KubeApi(await load_config(self.kubeconfig))
            svc = InventoryService(self.service_url, cred)
            self.controller = Controller(api, svc, self.settings)
            self._task = asyncio.current_task()
            self._started.set()
            try:
                await self.controller.run()
            finally:
                await api.close()
                await svc.close()

        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(main())
        except asyncio.CancelledError:
            pass
        except BaseException as exc:
            self.error = exc
        finally:
            self._started.set()
            self._loop.close()

    def start(self) -> RunningController:
        self._thread.start()
        self._started.wait(30)
        if self.error:
            raise self.error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._task is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(15)

    @property
    def cluster_id(self) -> str:
        assert self.controller is not None
        return self.controller.cluster_id


@pytest.fixture
def start_controller(tmp_path, kubeapi) -> Callable[..., RunningController]:
    running: list[RunningController] = []

    def start(
        service, name: str = "test-cluster", credential_file: Path | None = None, **settings
    ) -> RunningController:
        kc = kubeapi.write_kubeconfig(tmp_path / "kubeconfig")
        rc = RunningController(
            kc, service.url, credential_file or tmp_path / "cred.json", service.registration_token(), name, **settings
        ).start()
        running.append(rc)
        return rc

    yield start
    for rc in running:
        rc.stop()


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")
