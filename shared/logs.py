"""Structured log lines that carry the current trace and span ids.

`configure_logging` installs one root handler: JSON lines when the output is not a terminal
(containers, files, log shippers), readable text on a terminal. A handler-level filter
stamps `trace_id`/`span_id` on every record from the span context current where the log
call was made, so a line found in the logs leads to its trace in Jaeger and back.
"""

from __future__ import annotations

import json as _json
import logging
import sys
import time
from typing import Any, TextIO

from opentelemetry import trace

__all__ = ["JsonFormatter", "TextFormatter", "TraceContextFilter", "configure_logging"]

# The attributes every LogRecord has; anything else came from `extra=` and is logged too.
_STANDARD_ATTRS = frozenset(
    (
        "args",
        "asctime",
        # uvicorn's copy of `msg` with terminal colour codes: escape sequences in a JSON line.
        "color_message",
        "created",
        "exc_info",
        "exc_text",
        "filename",
        "funcName",
        "levelname",
        "levelno",
        "lineno",
        "message",
        "module",
        "msecs",
        "msg",
        "name",
        "pathname",
        "process",
        "processName",
        "relativeCreated",
        "span_id",
        "stack_info",
        "taskName",
        "thread",
        "threadName",
        "trace_id",
    )
)


class TraceContextFilter(logging.Filter):
    """Sets `record.trace_id` and `record.span_id` (empty strings outside a span)."""

    def filter(self, record: logging.LogRecord) -> bool:
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            record.trace_id = f"{span_context.trace_id:032x}"
            record.span_id = f"{span_context.span_id:016x}"
        else:
            record.trace_id = record.span_id = ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, service, logger, msg, trace_id, span_id, extras."""

    def __init__(self, service_name: str) -> None:
        super().__init__()
        self._service = service_name

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "service": self._service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        trace_id = getattr(record, "trace_id", "")
        if trace_id:
            entry["trace_id"] = trace_id
            entry["span_id"] = getattr(record, "span_id", "")
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return _json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`12:00:01.123 INFO  user_api.app  message  trace_id=… span_id=…` for terminals."""

    def format(self, record: logging.LogRecord) -> str:
        clock = time.strftime("%H:%M:%S", time.localtime(record.created))
        line = f"{clock}.{int(record.msecs):03d} {record.levelname:<5} {record.name}"
        line += f"  {record.getMessage()}"
        trace_id = getattr(record, "trace_id", "")
        if trace_id:
            line += f"  trace_id={trace_id} span_id={getattr(record, 'span_id', '')}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


def configure_logging(
    service_name: str,
    *,
    level: str = "INFO",
    json: bool | None = None,
    stream: TextIO | None = None,
) -> None:
    """Send all logging to `stream` (default stderr) through one handler; idempotent.

    `json=None` picks JSON unless the stream is a terminal. Loggers that keep their own
    handlers (uvicorn's default config does) bypass this one: run uvicorn with
    `log_config=None` so that its records reach the root logger.
    """
    stream = stream if stream is not None else sys.stderr
    if json is None:
        json = not (hasattr(stream, "isatty") and stream.isatty())
    handler = logging.StreamHandler(stream)
    handler.addFilter(TraceContextFilter())
    handler.setFormatter(JsonFormatter(service_name) if json else TextFormatter())
    handler.set_name("shared.logs")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "shared.logs"]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level.upper())


def _timestamp(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"
