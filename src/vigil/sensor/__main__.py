"""`python -m vigil.sensor ...`: the sensor alone, without importing every other unit's commands.

Same options as `vigil sensor`; the DaemonSet can use it to keep the sensor's memory small
(the full `vigil` command imports the service, controller and catalog as well).
"""

from vigil.sensor.cli import app

if __name__ == "__main__":
    app(prog_name="vigil sensor")
