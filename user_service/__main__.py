"""Run user_service: `python -m user_service`."""

from shared.entrypoint import main
from user_service.app import run
from user_service.settings import UserServiceSettings

if __name__ == "__main__":
    main(UserServiceSettings, run)
