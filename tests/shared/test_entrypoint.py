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
