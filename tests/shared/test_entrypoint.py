"""A service started with a bad setting says which, and exits, without a traceback."""

from __future__ import annotations

import asyncio
import os
import sys

from tests.support.services import ROOT


async def test_a_bad_setting_is_named_and_no_traceback_is_shown() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HTTP_PORT": "eighty"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "user_api", cwd=ROOT, env=env, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)

    assert process.returncode == 2
    assert b"http_port" in stderr
    assert b"Traceback" not in stderr


_FROZEN = """
import asyncio, gc
from shared.config import ServiceSettings
from shared.entrypoint import main

async def run(settings):
    print(gc.get_freeze_count(), flush=True)

main(ServiceSettings, run)
"""


async def test_what_was_imported_before_the_service_runs_is_exempt_from_full_collections() -> None:
    # A full collection walks every tracked object: user_api's 90,000 after its imports
    # cost 33 ms per walk, a pause in serving (see shared/startup_objects.py).
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SERVICE_NAME": "frozen"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _FROZEN, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), 30)

    assert process.returncode == 0
    assert int(stdout) > 10_000  # pydantic, grpc, the kit: what `main` found imported
