"""One module per console page; ROUTERS is the table the console mounts."""

from vigil.service.ui.pages import (
    admission,
    auth,
    clusters,
    connect,
    events,
    export,
    findings,
    images,
    overview,
    processes,
    search,
    settings,
    workloads,
)

ROUTERS = [
    auth.router,
    overview.router,
    clusters.router,
    images.router,
    workloads.router,
    processes.router,
    findings.router,
    admission.router,
    settings.router,
    connect.router,
    events.router,
    search.router,
    export.router,
]
