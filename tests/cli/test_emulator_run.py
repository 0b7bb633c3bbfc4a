"""``bluemule emulator run`` serves a device over a real Bumble HCI transport; a separate
``bluemule flash bumble:…`` process finds it by its advertisement and updates it.

Two virtual controllers on one link are exposed as HCI over TCP on 127.0.0.1 (as
``bumble-controllers`` does; ``tests.support.hci``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bluemule.emulator import make_app
from tests.support.hci import linked_controllers

BLUEMULE = str(Path(sys.executable).parent / "bluemule")


def test_emulator_run_serves_a_relay(tmp_path: Path) -> None:
    env = {**os.environ, "BLUEMULE_HOME": str(tmp_path / "home")}
    app = tmp_path / "app.bin"
    app.write_bytes(make_app("boron", tag="over-hci"))
    with linked_controllers(2) as linked:
        device_hci, relay_hci = linked.monikers
        server = subprocess.Popen(
            [BLUEMULE, "emulator", "run", str(tmp_path / "dev"), "--transport", device_hci],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert server.stdout is not None
            line = server.stdout.readline()
            serving = json.loads(line)["serving"]
            flashed = subprocess.run(
                [BLUEMULE, "flash", f"bumble:{relay_hci}", str(app), "--json"],
                capture_output=True,
                text=True,
                timeout=120,
                env=env,
                check=False,
            )
            assert flashed.returncode == 0, flashed.stderr
            report = json.loads(flashed.stdout)
            assert (report["result"], report["device_id"]) == ("applied", serving)
        finally:
            server.terminate()
            server.communicate(timeout=10)
