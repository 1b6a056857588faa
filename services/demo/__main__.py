"""`python -m services.demo`: a worker that runs the demo workflow."""

import sys

from services.demo.workflows import greet
from shared.service import run_service
from shared.workflow import Registry

if __name__ == "__main__":
    sys.exit(run_service("demo", Registry([greet])))
