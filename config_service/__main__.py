"""Run config_service: `python -m config_service`."""

from config_service.app import run
from config_service.settings import ConfigServiceSettings
from shared.entrypoint import main

if __name__ == "__main__":
    main(ConfigServiceSettings, run)
