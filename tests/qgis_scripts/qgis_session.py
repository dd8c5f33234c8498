"""What the QGIS scripts share: QGIS started headless, the arguments (JSON on stdin), the result (JSON on stdout).

These files run with QGIS's own Python (inside the Debian 13 root of ``make qgis-root``), never under pytest.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import Qgis, QgsApplication  # noqa: E402 — after the platform is chosen

RESULT_MARK = "QGIS-RESULT:"


def start() -> tuple[QgsApplication, dict]:
    """QGIS without a window, with the arguments the test sent."""
    arguments = json.loads(sys.stdin.read())
    app = QgsApplication([], False)
    app.initQgis()
    return app, arguments


def finish(app: QgsApplication, result: dict) -> None:
    """The result on one marked line (QGIS writes its own messages to the same streams)."""
    result["qgis_version"] = Qgis.version()
    sys.stdout.write(RESULT_MARK + json.dumps(result, default=str) + "\n")
    sys.stdout.flush()
    app.exitQgis()
