"""The extraction processes' guard: they end when the service that started them is gone."""

from __future__ import annotations

import os
import threading
import time


def exit_with_parent(parent: int) -> None:
    """Pool initializer: exit once `parent` (the service) is gone. A SIGKILLed service
    cannot shut its pool down, and the pool's workers hold both ends of their queue, so
    they would otherwise wait forever as orphans."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
