#!/usr/bin/env python3
"""Sends log records to a Loki push endpoint with the real `python-logging-loki` library (PyPI
`python-logging-loki`, module `logging_loki`, `LokiHandler(url=..., tags={...}, version="1")`),
then prints as JSON what was sent, so a test can compare it with what the server stored.

Install: python3 -m pip install --break-system-packages python-logging-loki   (0.3.1)

Usage:
  loki_logging_client.py --url URL --count N [--tag NAME=VALUE]... [--prefix TEXT]
                         [--level info[,warning,...]] [--logger NAME] [--record-tag NAME=VALUE]...
                         [--tenant ID] [--timeout-s 30]

URL is the server's base URL (`/loki/api/v1/push` is appended) or the full push URL. Record i's
message is `<prefix> <i> <fixed text with non-ASCII, quotes, a backslash and a tab>`; its level is
the i-th of --level, cycled.

What the library does (read from logging_loki 0.3.1: handlers.py, emitter.py, const.py):
  * `LokiHandler.emit` is synchronous: every record is one HTTP POST made inside `logger.log()`
    through a `requests.Session` (keep-alive), with no timeout of its own. So once the last
    `logger.log()` returned, every request has been answered. (`LokiQueueHandler` would send from
    a background thread; it is not used here.)
  * Request (emitter version "1"): `POST <url>` with `requests`' `json=` argument, i.e.
    `Content-Type: application/json`, no Content-Encoding, no X-Scope-OrgID (multi-tenancy is not
    supported by the library; --tenant adds the header on the session, outside the library), and
    the body `json.dumps(payload)` with Python's defaults: `", "`/`": "` separators and
    ensure_ascii, so every non-ASCII character is a `\\uXXXX` escape (characters outside the BMP
    as a UTF-16 surrogate pair, e.g. U+1F680 as `\\ud83d\\ude80`). The payload is always one
    stream with one entry:
        {"streams": [{"stream": {<tags>, "severity": "<level>", "logger": "<logger name>"},
                      "values": [["<ns>", "<line>"]]}]}
  * Labels: the handler's `tags` as given (names NOT cleaned, values as given: pass valid label
    names and string values), plus `severity` = `record.levelname.lower()` (debug, info,
    warning, error, critical) and `logger` = the logger's name; a record's `extra={"tags": {...}}`
    adds more, with names cleaned (`'`, `"` removed; space, `.`, `-` become `_`; other characters
    outside [A-Za-z0-9_] dropped). Later keys win on a name clash (severity/logger over the
    handler's tags).
  * Line: `handler.format(record)`, with no formatter set `"%(message)s"`, i.e.
    `record.getMessage()` unchanged (a traceback would be appended if exc_info were given).
  * Timestamp: `str(int(time.time() * 1e9))` taken when the request is built (not
    `record.created`): nanoseconds, but float64 arithmetic, so only ~256 ns granularity.
  * Success is status 204 exactly: any other status, 200 included, raises
    `ValueError("Unexpected Loki API response status code: N")` inside `emit`, which
    `LokiHandler.handleError` swallows (it closes the session and lets `logging` print a
    traceback to stderr). The response body is never read.

This script therefore records every response with a `requests` response hook (on a Session
subclass installed as the emitter's `session_class`, so a session re-created after an error has
it too), overrides `handleError` to collect failures, and exits with status 1 unless every record
was answered 204, printing each failing status and response body on stderr.

Output (one JSON document on stdout, also on failure, with "ok": false):
  {"ok", "url", "library": {"name", "version", "emitter"}, "tenant", "tags", "messages": [...],
   "records": [{"message", "level", "labels": {...}, "timestamp_ns": "<ns>", "line", "status"}],
   "requests": [{"status", "body", "response"}],   # body: the exact request body text sent
   "failures": [{"message", "error"}]}
`records[i]` (labels, timestamp, line, status) is taken from the request actually sent for
record i (all null when no answer came).
"""

import argparse
import functools
import ipaddress
import itertools
import json
import logging
import sys
import traceback
import urllib.parse

import logging_loki
import requests

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR,
          "critical": logging.CRITICAL}
# Non-ASCII in and beyond the BMP, JSON-escaped characters (quote, backslash, tab), a control
# character and a character that \\s splits on in some languages.
FIXED_TEXT = 'ünïcödé ✓ 日本語 🚀 "quoted" back\\slash\ttab \x01ctl \u2028sep end'


class RecordingSession(requests.Session):
    """A session that adds a default timeout and optional tenant header and records responses."""

    def __init__(self, log, timeout, tenant):
        super().__init__()
        self._log = log
        self._timeout = timeout
        if tenant:
            self.headers["X-Scope-OrgID"] = tenant
        self.hooks["response"].append(self._record)

    def request(self, method, url, **kwargs):
        kwargs.setdefault("timeout", self._timeout)
        return super().request(method, url, **kwargs)

    def _record(self, response, *args, **kwargs):
        body = response.request.body
        if isinstance(body, bytes):
            body = body.decode("utf-8")
        self._log.append({"status": response.status_code, "body": body, "response": response.text})


class StrictLokiHandler(logging_loki.LokiHandler):
    """LokiHandler whose swallowed errors are collected instead of only printed."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.failures = []

    def handleError(self, record):  # noqa: N802
        self.failures.append({"message": record.getMessage(), "error": traceback.format_exc().strip()})
        super().handleError(record)


def pair(text):
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    return name, value


def push_url(url):
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SystemExit(f"--url must point at a loopback address (127.0.0.0/8, ::1, localhost), got {host!r}")
    return url if url.rstrip("/").endswith("/push") else url.rstrip("/") + "/loki/api/v1/push"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--tag", type=pair, action="append", default=[], help="handler tag NAME=VALUE")
    parser.add_argument("--record-tag", type=pair, action="append", default=[],
                        help="per-record tag NAME=VALUE (extra={'tags': ...}; the library cleans the name)")
    parser.add_argument("--prefix", default="python-logging-loki")
    parser.add_argument("--level", default="info", help="comma-separated levels, cycled over the records")
    parser.add_argument("--logger", default="vigil.pyclient")
    parser.add_argument("--tenant")
    parser.add_argument("--timeout-s", type=float, default=30.0)
    args = parser.parse_args()
    levels = [lv.strip().lower() for lv in args.level.split(",") if lv.strip()]
    for lv in levels:
        if lv not in LEVELS:
            parser.error(f"unknown level {lv!r} (one of {', '.join(LEVELS)})")
    if not levels or args.count < 0:
        parser.error("--level must name a level and --count must be >= 0")
    sys.stdout.reconfigure(errors="backslashreplace")
    sys.stderr.reconfigure(errors="backslashreplace")

    url = push_url(args.url)
    tags = dict(args.tag)
    responses = []
    handler = StrictLokiHandler(url=url, tags=tags, version="1")
    handler.emitter.session_class = functools.partial(RecordingSession, responses, args.timeout_s, args.tenant)
    logger = logging.getLogger(args.logger)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(handler)

    messages, records = [], []
    extra = {"tags": dict(args.record_tag)} if args.record_tag else None
    for i, level in zip(range(args.count), itertools.cycle(levels)):
        message = f"{args.prefix} {i} {FIXED_TEXT}"
        messages.append(message)
        before = len(responses)
        # "%s" so that a '%' in the prefix is not taken as a format directive.
        logger.log(LEVELS[level], "%s", message, extra=extra)
        # emit() is synchronous: the request for this record has been answered (or failed).
        record = {"message": message, "level": level, "labels": None, "timestamp_ns": None, "line": None,
                  "status": None}
        if len(responses) > before:
            response = responses[before]
            payload = json.loads(response["body"])
            [stream] = payload["streams"]
            [[ts, line]] = stream["values"]
            record.update(labels=stream["stream"], timestamp_ns=ts, line=line, status=response["status"])
        records.append(record)
    logger.removeHandler(handler)
    handler.close()

    problems = []
    if handler.failures:
        problems.append(f"{len(handler.failures)} of {args.count} records failed in the handler")
    if len(responses) != args.count:
        problems.append(f"{len(responses)} responses for {args.count} records")
    bad = [r for r in responses if r["status"] != 204]
    for r in bad[:10]:
        problems.append(f"status {r['status']}: {r['response'][:2000]}")
    for rec in records:
        if rec["status"] is None:
            problems.append(f"no response for {rec['message']!r}")
        elif rec["line"] != rec["message"]:
            problems.append(f"the library sent line {rec['line']!r} for message {rec['message']!r}")
    for f in handler.failures[:10]:
        problems.append(f"handler error for {f['message']!r}: {f['error'].splitlines()[-1]}")
    result = {
        "ok": not problems,
        "url": url,
        "library": {"name": "python-logging-loki", "version": logging_loki.__version__, "emitter": "1"},
        "tenant": args.tenant,
        "tags": tags,
        "messages": messages,
        "records": records,
        "requests": responses,
        "failures": handler.failures,
    }
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    sys.stdout.flush()
    if problems:
        for p in problems:
            print(f"loki_logging_client: {p}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
