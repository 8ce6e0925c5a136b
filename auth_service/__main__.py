"""Run auth_service: `python -m auth_service`."""

from auth_service.app import run
from auth_service.settings import AuthServiceSettings
from shared.entrypoint import main

if __name__ == "__main__":
    main(AuthServiceSettings, run)
