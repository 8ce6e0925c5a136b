"""Run user_api: `python -m user_api`."""

from shared.entrypoint import main
from user_api.app import run
from user_api.settings import UserApiSettings

if __name__ == "__main__":
    main(UserApiSettings, run)
