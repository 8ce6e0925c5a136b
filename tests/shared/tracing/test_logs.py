from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from shared.logs import configure_logging
from tests.shared.tracing.conftest import Recorded


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_root")
def test_json_lines_carry_the_trace_id(recorded: Recorded) -> None:
    stream = io.StringIO()
    configure_logging("user_api", stream=stream)  # not a TTY: JSON
    log = logging.getLogger("user_api.test")
    log.info("outside")
    with recorded.tracing.tracer.start_as_current_span("request") as span:
        log.warning("inside %s", "span", extra={"user_id": 7})
    outside, inside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert "trace_id" not in outside
    context = span.get_span_context()
    assert inside["trace_id"] == f"{context.trace_id:032x}"
    assert inside["span_id"] == f"{context.span_id:016x}"
    assert inside["msg"] == "inside span"
    assert inside["level"] == "WARNING"
    assert inside["service"] == "user_api"
    assert inside["user_id"] == 7


@pytest.mark.usefixtures("restore_root")
def test_json_lines_leave_out_uvicorn_terminal_colours() -> None:
    stream = io.StringIO()
    configure_logging("user_api", stream=stream)
    colored = "Started server process [\x1b[36m%d\x1b[0m]"
    logging.getLogger("uvicorn.error").info(
        "Started server process [%d]", 42, extra={"color_message": colored}
    )
    line = stream.getvalue()
    assert json.loads(line)["msg"] == "Started server process [42]"
    assert "color_message" not in line
    assert "\\u001b" not in line


@pytest.mark.usefixtures("restore_root")
def test_text_lines_and_reconfiguration(recorded: Recorded) -> None:
    configure_logging("user_api", json=True, stream=io.StringIO())
    stream = io.StringIO()
    configure_logging("user_api", json=False, level="debug", stream=stream)
    assert len([h for h in logging.getLogger().handlers if h.get_name() == "shared.logs"]) == 1
    with recorded.tracing.tracer.start_as_current_span("request") as span:
        logging.getLogger("x").debug("hello")
    line = stream.getvalue().strip()
    assert "DEBUG x  hello" in line
    assert f"trace_id={span.get_span_context().trace_id:032x}" in line
