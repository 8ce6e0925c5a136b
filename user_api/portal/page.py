"""The portal's HTML, rendered here: the page, and the live part the script swaps in.

No build step and no client-side templates: the server renders the `<main>` fragment and
sends it over server-sent events; the page's script only puts it in place.
"""

from __future__ import annotations

import time
from html import escape
from typing import Any

from user_api.portal.overview import Snapshot

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:12px 24px;display:flex;gap:16px;align-items:baseline}
header h1{font-size:18px;margin:0}header small{opacity:.7}
main{padding:16px 24px;display:grid;gap:16px}
section{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:12px 16px}
h2{font-size:15px;margin:0 0 8px}h2 a{font-size:12px;font-weight:normal;margin-left:8px}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:4px 8px;
border-bottom:1px solid #eef0f3;font-variant-numeric:tabular-nums}th{color:#5b6475;font-weight:600}
.pill{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px;font-weight:600}
.ok,.closed{background:#dcf5e3;color:#146c2e}.down,.open{background:#fde0e0;color:#a11}
.half_open,.unknown{background:#fff3cd;color:#7a5a00}.muted{color:#8a93a3}
.error{background:#fde0e0;color:#a11;padding:8px 12px;border-radius:6px}
"""

_SCRIPT = """
const main = document.querySelector("main");
const state = document.getElementById("live");
const events = new EventSource("portal/events");
events.onmessage = (e) => { main.innerHTML = e.data; state.textContent = "live"; };
events.onerror = () => { state.textContent = "reconnecting…"; };
"""


def page(snapshot: Snapshot, *, title: str, jaeger_ui_url: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(title)} · portal</title>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<style>{_STYLE}</style></head><body>"
        f"<header><h1>{escape(title)}</h1><small>services, nodes, circuits</small>"
        "<small id=live>connecting…</small></header>"
        f"<main>{fragment(snapshot, jaeger_ui_url=jaeger_ui_url)}</main>"
        f"<script>{_SCRIPT}</script></body></html>"
    )


def fragment(snapshot: Snapshot, *, jaeger_ui_url: str) -> str:
    """The live part of the page, on one line (an SSE `data:` field cannot hold newlines)."""
    parts = []
    if snapshot.error:
        parts.append(f"<div class=error>{escape(snapshot.error)}</div>")
    services = snapshot.services()
    if not services:
        parts.append("<section><p class=muted>No service is registered.</p></section>")
    for name, statuses in services.items():
        parts.append(_service(name, statuses, snapshot, jaeger_ui_url))
    parts.append(_circuits(snapshot.circuits))
    return "".join(parts)


def _service(name: str, statuses: list[Any], snapshot: Snapshot, jaeger: str) -> str:
    traces = ""
    if jaeger:
        url = f"{jaeger.rstrip('/')}/search?service={escape(name)}"
        traces = f'<a href="{url}" target=_blank rel=noopener>recent traces</a>'
    rows = "".join(
        f'<tr data-node="{escape(s.node.id)}"><td>{escape(s.node.id)}</td>'
        f"<td>{escape(s.node.address)}</td><td>{escape(s.node.version)}</td>"
        f"<td>{_ago(s.registered_at)}</td><td>{_ago(s.last_heartbeat)}</td></tr>"
        for s in statuses
    )
    deps = snapshot.dependencies(name)
    dep_cells = " ".join(_dependency(d, snapshot.reachable.get(d)) for d in deps)
    return (
        f'<section data-service="{escape(name)}"><h2>{escape(name)}{traces}</h2>'
        "<table><tr><th>node</th><th>address</th><th>version</th>"
        f"<th>registered</th><th>last heartbeat</th></tr>{rows}</table>"
        f"<p>depends on: {dep_cells or '<span class=muted>nothing declared</span>'}</p>"
        "</section>"
    )


_PILLS: dict[bool | None, tuple[str, str]] = {
    True: ("ok", "reachable"),
    False: ("down", "unreachable"),
    None: ("unknown", "checking"),
}


def _dependency(name: str, reachable: bool | None) -> str:
    css, text = _PILLS[reachable]
    return (
        f'<span data-dependency="{escape(name)}" data-reachable="{text}">{escape(name)} '
        f"<span class='pill {css}'>{text}</span></span>"
    )


def _circuits(circuits: dict[str, dict[str, Any]]) -> str:
    if not circuits:
        return "<section><h2>circuits</h2><p class=muted>No call made yet.</p></section>"
    rows = "".join(
        f'<tr data-circuit="{escape(name)}" data-state="{escape(c["state"])}">'
        f"<td>{escape(name)}</td><td><span class='pill {escape(c['state'])}'>"
        f"{escape(c['state'])}</span></td><td>{c['error_percent']}%</td>"
        f"<td>{c['volume']}</td><td>{c['in_flight']}</td><td>{c['rejected']}</td></tr>"
        for name, c in sorted(circuits.items())
    )
    return (
        "<section><h2>circuits <small class=muted>(this user_api)</small></h2><table>"
        "<tr><th>command</th><th>state</th><th>errors</th><th>volume</th>"
        f"<th>in flight</th><th>rejected</th></tr>{rows}</table></section>"
    )


def _ago(moment: float | None) -> str:
    if moment is None:
        return "<span class=muted>&ndash;</span>"
    seconds = max(0, int(time.time() - moment))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"
