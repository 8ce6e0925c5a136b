"""GET /portal in a real headless browser (Debian's chromium, driven by Playwright), on the
whole system as real processes: config, auth and two user services and user_api on etcd."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, async_playwright

from shared.registry import EtcdRegistry
from tests.conftest import StartService
from tests.support.http import login
from tests.support.services import wait_for_nodes
from tests.support.system import System, start_system

pytestmark = pytest.mark.integration

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# The README's picture is taken by this test: PORTAL_SCREENSHOT=docs/portal.png to retake it.
SCREENSHOT = os.environ.get("PORTAL_SCREENSHOT")
VERIFY = "user_service.VerifyCredentials"


@pytest.fixture
async def system(start_service: StartService, registry: EtcdRegistry) -> AsyncIterator[System]:
    system = await start_system(
        start_service,
        registry,
        user_services=2,
        JAEGER_UI_URL="http://localhost:16686",
        PORTAL_REFRESH_S="0.25",
    )
    try:
        yield system
    finally:
        await system.close()


@pytest.fixture
async def page(system: System) -> AsyncIterator[Page]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1100, "height": 900})
            await page.goto(f"{system.base_url}/portal", timeout=10_000)
            await page.wait_for_selector("#live:text('live')", timeout=5_000)
            yield page
        finally:
            await browser.close()


async def test_the_page_shows_the_four_services_their_nodes_and_dependencies(
    page: Page, registry: EtcdRegistry
) -> None:
    for service in ("config_service", "auth_service", "user_service", "user_api"):
        await page.wait_for_selector(f'section[data-service="{service}"]', timeout=5_000)
    for node in await registry.get("user_service"):
        assert await page.locator(f'[data-node="{node.id}"]').count() == 1
    api = page.locator('section[data-service="user_api"]')
    for dependency in ("auth_service", "user_service"):
        await api.locator(f'[data-dependency="{dependency}"][data-reachable="reachable"]').wait_for(
            timeout=5_000
        )
    link = api.locator("a", has_text="recent traces")
    assert await link.get_attribute("href") == "http://localhost:16686/search?service=user_api"


async def test_a_node_stopped_with_sigterm_disappears_within_2_s(
    page: Page, system: System, registry: EtcdRegistry
) -> None:
    nodes = await registry.get("user_service")
    by_address = {node.address: node for node in nodes}
    await page.wait_for_selector(f'[data-node="{nodes[0].id}"]', timeout=5_000)
    await page.wait_for_selector(f'[data-node="{nodes[1].id}"]', timeout=5_000)

    system.users[0].signal(signal.SIGTERM)
    remaining = await wait_for_nodes(registry, "user_service", 1)
    gone = next(node for address, node in by_address.items() if node != remaining[0])

    await page.wait_for_selector(f'[data-node="{gone.id}"]', state="detached", timeout=2_000)
    assert await page.locator(f'[data-node="{remaining[0].id}"]').count() == 1


async def test_a_frozen_services_circuit_shows_open_within_2_s(
    page: Page, system: System, tmp_path: Path
) -> None:
    assert (await login(system.http)).status_code == 200
    await page.wait_for_selector(f'[data-circuit="{VERIFY}"][data-state="closed"]', timeout=5_000)

    with system.frozen(system.users[0]), system.frozen(system.users[1]):
        # Default settings: 20 calls that time out (1 s each) open the circuit; a retry of
        # a timed-out call on the other node then finds it open (503) or times out too.
        statuses = await asyncio.gather(*(login(system.http) for _ in range(20)))
        assert {response.status_code for response in statuses} <= {503, 504}
        await page.wait_for_selector(f'[data-circuit="{VERIFY}"][data-state="open"]', timeout=2_000)
        picture = Path(SCREENSHOT) if SCREENSHOT else tmp_path / "portal.png"
        await page.screenshot(path=str(picture), full_page=True)
        assert picture.read_bytes().startswith(b"\x89PNG")

    assert await _open_per_debug_endpoint(system.http)


async def _open_per_debug_endpoint(http: httpx.AsyncClient) -> bool:
    breakers = (await http.get("/debug/breakers")).json()["breakers"]
    return bool(breakers[VERIFY]["state"] == "open")
