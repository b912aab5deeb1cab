"""Backfill: a file of Segment messages, one JSON object per line (as Segment's archives and S3
exports hold them, plain or gzipped), sent to a running relay through its batch endpoint, so
each goes through the pipeline any client's would (validation, dedupe, back-pressure, queue).

An import can be interrupted and run again: a state file beside the input records the lines whose
batch the relay acknowledged, and a line without a `messageId` is given one derived from its
place and content, so a batch sent twice (stored, but the acknowledgement lost) is stored once.

Archived messages carry Segment's own `timestamp`, already corrected for the client's clock: the
line's `sentAt` is left out so that the relay does not correct it again against today's arrival.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import orjson

from .segment.messages import MAX_MESSAGE_BYTES, InvalidMessage, accept

BATCH_BYTES = 400 * 1024  # under ingest's 500 KB a request, with room for the envelope
BATCH_MESSAGES = 2_000
STATE_SUFFIX = ".import-state"


class ImportFailed(Exception):
    """The import cannot go on (the text says why and what to do); what was sent stays sent."""


@dataclass
class ImportState:
    """What an import has done so far, saved after every batch the relay acknowledged."""

    file: str
    size: int
    mtime_ns: int
    lines_done: int = 0
    accepted: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    examples: dict[str, int] = field(default_factory=dict)  # reason -> first line number
    resumed_from: int = 0

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(
            orjson.dumps(
                {
                    "file": self.file,
                    "size": self.size,
                    "mtime_ns": self.mtime_ns,
                    "lines_done": self.lines_done,
                    "accepted": self.accepted,
                    "refused": dict(self.refused),
                    "examples": self.examples,
                },
                option=orjson.OPT_INDENT_2,
            )
        )
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> ImportState:
        raw = orjson.loads(path.read_bytes())
        return cls(
            raw["file"],
            raw["size"],
            raw["mtime_ns"],
            raw["lines_done"],
            raw["accepted"],
            Counter(raw["refused"]),
            dict(raw["examples"]),
        )


def state_path(file: Path) -> Path:
    return file.with_name(file.name + STATE_SUFFIX)


def _open(file: Path) -> tuple[BinaryIO, BinaryIO]:
    """(the raw file, for progress; the stream of lines), gzip told by its magic bytes."""
    raw = file.open("rb")
    if raw.read(2) == b"\x1f\x8b":
        raw.seek(0)
        # GzipFile reads bytes like any BinaryIO; typeshed types it as a BufferedIOBase only
        return raw, gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    raw.seek(0)
    return raw, raw


def prepared(line: bytes, number: int = 0) -> tuple[bytes, str]:
    """Line `number` of an archive as the relay should receive it: (JSON, messageId).
    InvalidMessage with the reason when ingest would refuse it (checked here with ingest's own
    code, so that every refusal is reported with its line). A line without a messageId gets one
    from its number and content: the same on every run, distinct for two identical lines."""
    if len(line) > MAX_MESSAGE_BYTES:
        raise InvalidMessage(f"message is {len(line)} bytes; the limit is {MAX_MESSAGE_BYTES} (32 KB)")
    try:
        msg = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        raise InvalidMessage(f"not valid JSON: {e}") from None
    if not isinstance(msg, dict):
        raise InvalidMessage("a message must be a JSON object")
    msg.pop("sentAt", None)  # `timestamp` is already Segment's corrected time
    if "timestamp" not in msg and isinstance(msg.get("receivedAt"), str):
        msg["timestamp"] = msg["receivedAt"]
    if not msg.get("messageId"):
        msg["messageId"] = "import-" + hashlib.sha256(b"%d:" % number + line).hexdigest()[:32]
    body = orjson.dumps(msg)
    accepted = accept(body, received_at=time.time())
    return body, accepted.message_id


def lines(file: Path, skip: int) -> Iterator[tuple[int, bytes, int]]:
    """(line number from 1, the line, bytes of the file read so far), blank lines left out."""
    raw, stream = _open(file)
    try:
        for number, line in enumerate(stream, 1):
            if number <= skip:
                continue
            line = line.strip()
            if line:
                yield number, line, raw.tell()
    except (OSError, EOFError) as e:  # a truncated gzip: what was read is imported
        raise ImportFailed(f"{file} could not be read to the end: {e}") from None
    finally:
        raw.close()


def run(
    file: Path,
    url: str,
    write_key: str,
    *,
    restart: bool = False,
    batch_bytes: int = BATCH_BYTES,
    on_progress: Callable[[ImportState, int], None] = lambda state, position: None,
    http: httpx.Client | None = None,
) -> ImportState:
    """Import `file` into the relay at `url`; returns the totals (resumed ones included)."""
    stat = file.stat()
    saved = state_path(file)
    state = ImportState(str(file.resolve()), stat.st_size, stat.st_mtime_ns)
    if saved.exists() and not restart:
        previous = ImportState.load(saved)
        if (previous.size, previous.mtime_ns) != (stat.st_size, stat.st_mtime_ns):
            raise ImportFailed(
                f"{file} changed since the import recorded in {saved} began: pass --restart to import it "
                "from the start (messages already stored are recognised by their messageId)"
            )
        state = previous
        state.resumed_from = previous.lines_done
    client = http or httpx.Client(timeout=60)
    batch: list[bytes] = []
    size = 0
    last_line = state.lines_done
    try:
        for number, line, position in lines(file, state.lines_done):
            try:
                body, _ = prepared(line, number)
            except InvalidMessage as e:
                reason = str(e)
                state.refused[reason] += 1
                state.examples.setdefault(reason, number)
                last_line = number
                continue
            if batch and (size + len(body) > batch_bytes or len(batch) >= BATCH_MESSAGES):
                _send(client, url, write_key, batch, state)
                state.lines_done = last_line
                state.save(saved)
                on_progress(state, position)
                batch, size = [], 0
            batch.append(body)
            size += len(body) + 1
            last_line = number
        if batch:
            _send(client, url, write_key, batch, state)
        state.lines_done = last_line
        state.save(saved)
        on_progress(state, stat.st_size)
    finally:
        if http is None:
            client.close()
    return state


def _send(client: httpx.Client, url: str, write_key: str, batch: list[bytes], state: ImportState) -> None:
    """One batch, until the relay has it: back-pressure and outages are waited out (a few
    minutes), a refusal of the whole request stops the import."""
    content = gzip.compress(b'{"batch":[' + b",".join(batch) + b"]}", compresslevel=5)
    delay = 1.0
    deadline = time.monotonic() + 600
    while True:
        try:
            r = client.post(
                f"{url}/v1/batch",
                content=content,
                auth=(write_key, ""),
                headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
            )
        except httpx.HTTPError as e:
            if time.monotonic() > deadline:
                raise ImportFailed(
                    f"the relay at {url} does not answer ({e}); run the import again to resume"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 30)
            continue
        if r.status_code == 200:
            body: dict[str, Any] = r.json()
            rejected = body.get("rejected") or []
            for item in rejected:  # (none expected: the same checks ran here first)
                state.refused[str(item.get("reason"))] += 1
            state.refused["refused by the relay"] += int(body.get("rejectedCount", len(rejected))) - len(
                rejected
            )
            if not state.refused["refused by the relay"]:
                del state.refused["refused by the relay"]
            state.accepted += int(body.get("accepted", len(batch)))
            return
        if r.status_code in (429, 503) and time.monotonic() < deadline:
            time.sleep(float(r.headers.get("retry-after", delay)))
            delay = min(delay * 2, 30)
            continue
        try:
            message = r.json().get("message", r.text)
        except ValueError:
            message = r.text
        raise ImportFailed(f"the relay at {url} refused the import: {r.status_code} {message}"[:500])
