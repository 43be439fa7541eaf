from .cli import app

app(prog_name="python -m vigil.devtools.kubeapi")
