"""The child process that inserts appended messages into the SQLite queue.

Why a process: a writer thread must take the GIL back from the thread that parses requests
each time SQLite returns, and under load that wait (up to the interpreter's 5 ms switch
interval) was most of a commit's time. A child process has a GIL of its own, so parsing and
inserting run side by side on two cores.

Protocol on stdin/stdout (both binary, both in order):
  request  = u32 length, then a pickle of
             (updated_at, [(source, message_id, type, body, received_at, sent_at), ...])
  reply    = b"\\x00" + u64 transaction number            -- committed
           | b"\\x01" + u32 length + UTF-8 error message  -- not stored
Every request that is already waiting when the writer is free goes into the same transaction
(group commit); each gets its own reply once that transaction is committed. End of input ends
the process, so it never outlives the relay.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sqlite3
import struct
import sys
from typing import Any

_LEN = struct.Struct(">I")
_TXN = struct.Struct(">Q")
COLUMNS = ("source", "message_id", "type", "body", "received_at", "sent_at", "updated_at")
MAX_ROWS_PER_INSERT = 4096  # x 7 parameters stays under SQLite's limit of 32766


def insert_sql(rows: int) -> str:
    return f"INSERT INTO messages ({', '.join(COLUMNS)}) VALUES " + ",".join(
        ["(" + ",".join("?" * len(COLUMNS)) + ")"] * rows
    )


def insert(conn: sqlite3.Connection, params: list[Any]) -> None:
    """Insert rows (a parameter per column each) in one transaction, in as few statements as possible."""
    width = len(COLUMNS)
    rows = len(params) // width
    if rows <= MAX_ROWS_PER_INSERT:  # one statement: SQLite commits it on its own
        conn.execute(insert_sql(rows), params)
        return
    step = MAX_ROWS_PER_INSERT * width
    conn.execute("BEGIN IMMEDIATE")
    try:
        for start in range(0, len(params), step):
            chunk = params[start : start + step]
            conn.execute(insert_sql(len(chunk) // width), chunk)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def connect(path: str, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, cached_statements=32)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'FULL' if synchronous.upper() == 'FULL' else 'NORMAL'}")
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA secure_delete=ON")  # (the right to be forgotten: see sqlite.py)
    conn.execute("PRAGMA cache_size=-32768")
    return conn


class FrameReader:
    """Reads whole frames from a blocking pipe: at least one, then all that are already there."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = bytearray()

    def _fill(self) -> bool:
        chunk = os.read(self.fd, 1 << 20)
        if not chunk:
            return False
        self.buf += chunk
        return True

    def frames(self) -> list[bytes] | None:
        """The next frames, or None at end of input."""
        out: list[bytes] = []
        while not out:
            while True:
                if len(self.buf) >= 4:
                    (size,) = _LEN.unpack_from(self.buf)
                    if len(self.buf) >= 4 + size:
                        out.append(bytes(self.buf[4 : 4 + size]))
                        del self.buf[: 4 + size]
                        continue
                break
            if not out and not self._fill():
                return None
        return out


def serve(path: str, synchronous: str, fd_in: int, fd_out: int) -> None:
    conn = connect(path, synchronous)
    reader = FrameReader(fd_in)
    txn = 0
    while (frames := reader.frames()) is not None:
        params: list[Any] = []
        for frame in frames:
            updated_at, rows = pickle.loads(frame)
            for row in rows:
                params += row
                params.append(updated_at)
        try:
            insert(conn, params)
            txn += 1
            reply = (b"\x00" + _TXN.pack(txn)) * len(frames)
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}".encode()
            reply = (b"\x01" + _LEN.pack(len(message)) + message) * len(frames)
        view = memoryview(reply)
        while view:
            view = view[os.write(fd_out, view) :]
    conn.close()


def main() -> None:
    path, synchronous = sys.argv[1], sys.argv[2]
    # Ctrl-C and SIGTERM reach the whole process group; the relay decides when the writer stops
    # (it closes our input after the last append), and a relay killed outright closes it too.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(BrokenPipeError, KeyboardInterrupt):
        serve(path, synchronous, sys.stdin.fileno(), sys.stdout.fileno())


if __name__ == "__main__":
    main()
