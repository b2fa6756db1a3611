"""Handlers for AWS's Python runtime interface client (awslambdaric), the exec-mode peers.

Run as `python3 -m awslambdaric handler.<name>` from this folder, with AWS_LAMBDA_RUNTIME_API set.

- echo:     returns the event.
- error:    raises; the message is the event's "message" (or "error") when present.
- crash:    exits the process with status 1 without answering (os._exit).
- segv:     dies of SIGSEGV.
- sleep:    sleeps {"ms": N} (or {"sleep_ms": N}) milliseconds, then returns {"slept_ms": N}.
- big_line: prints one stdout line of {"bytes": N} (or {"line_bytes": N}) bytes, newline excluded,
            then returns {"line_bytes": N}.
"""
import os
import signal
import sys
import time


class HandlerError(Exception):
    """The error the `error` handler raises; its errorType is `HandlerError`."""


def _field(event, *names, default=0):
    if isinstance(event, dict):
        for name in names:
            if name in event:
                return event[name]
    return default


def echo(event, context):
    return event


def error(event, context):
    message = _field(event, "message", "error", default="the error handler always fails")
    raise HandlerError(message)


def crash(event, context):
    sys.stdout.flush()
    os._exit(1)


def segv(event, context):
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGSEGV)


def sleep(event, context):
    ms = int(_field(event, "ms", "sleep_ms"))
    time.sleep(ms / 1000)
    return {"slept_ms": ms}


def big_line(event, context):
    size = int(_field(event, "bytes", "line_bytes"))
    sys.stdout.write("x" * size + "\n")
    sys.stdout.flush()
    return {"line_bytes": size}
