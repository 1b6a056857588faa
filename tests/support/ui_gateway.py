"""`python -m tests.support.ui_gateway`: the gateway for the browser tests (see ui_app)."""

import sys

from tests.support.ui_app import serve_gateway

if __name__ == "__main__":
    sys.exit(serve_gateway())
