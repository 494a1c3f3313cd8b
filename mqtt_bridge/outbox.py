"""Disk-backed store-and-forward queue for events and retained state (SQLite, WAL).

A message is written here before it is handed to paho and deleted only when the
broker has acknowledged it (PUBACK), so a broker outage or a killed process loses
nothing that reached ``put_many``: after a restart every row is replayed in order
(at least once; subscribers de-duplicate events on (device, run, seq)).

Bounded: beyond ``max_rows`` the oldest rows are evicted and counted. Retained
topics (state, limits) are *coalesced*: a newer value replaces an older one that
was not yet handed to paho, so an outage queues one state, not thousands.

WAL with synchronous=NORMAL survives a killed process (the WAL is in the OS page
cache); only an OS crash or power cut may lose the last commits. Pass
synchronous="FULL" to survive those too, at several times the cost per commit.

One sqlite3 connection, shared by the caller's thread (put) and the bridge's
sender thread (next_rows, ack), serialised by a lock; the file is opened in
exclusive locking mode, so one process at a time owns a queue.
"""

import os
import sqlite3
import threading

from .errors import OutboxError, SettingError

FORMAT = "bms-twin-outbox/1"
_SYNC_MODES = ("OFF", "NORMAL", "FULL")


class Outbox:
    def __init__(self, path: str, max_rows: int = 100_000, synchronous: str = "NORMAL") -> None:
        if type(max_rows) is not int or max_rows < 1:
            raise SettingError("max_rows", max_rows, "must be an int >= 1")
        if synchronous not in _SYNC_MODES:
            raise SettingError("synchronous", synchronous, "must be one of %s" % (_SYNC_MODES,))
        self.path = path
        self.max_rows = max_rows
        self.evicted = 0
        self.coalesced = 0     # rows replaced by a newer one of their retained topic before they were sent
        self._lock = threading.Lock()
        # Rows with id <= handed_id have been given to paho in this process and
        # await their PUBACK; paho itself resends those after a reconnect.
        self.handed_id = 0
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=0)
            # Exclusive: one process per queue file (a second one gets OutboxError, not a
            # silently shared queue), and WAL then needs no shared-memory index: cheaper commits.
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=%s" % synchronous)
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            # Ids are assigned here, strictly increasing within a process (see _next_id);
            # no AUTOINCREMENT, whose sqlite_sequence update costs a second page per commit.
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY,"
                " topic TEXT NOT NULL, payload BLOB NOT NULL, qos INTEGER NOT NULL,"
                " retain INTEGER NOT NULL, coalesce INTEGER NOT NULL)")
            self._db.execute("CREATE INDEX IF NOT EXISTS outbox_coalesce ON outbox (topic) WHERE coalesce = 1")
            row = self._db.execute("SELECT value FROM meta WHERE key='format'").fetchone()
            if row is None:
                self._db.execute("INSERT INTO meta (key, value) VALUES ('format', ?)", (FORMAT,))
            elif row[0] != FORMAT:
                raise OutboxError("%s: format %r, expected %r" % (path, row[0], FORMAT))
            self._count = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
            self.replayed = self._count   # rows a previous process left, sent again by this one
            self._next_id = (self._db.execute("SELECT MAX(id) FROM outbox").fetchone()[0] or 0) + 1
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc):
                raise OutboxError("%s: in use by another process (one bridge per queue file)" % path) from exc
            raise OutboxError("%s: cannot open as a store-and-forward queue: %s" % (path, exc)) from exc
        except sqlite3.DatabaseError as exc:
            raise OutboxError("%s: cannot open as a store-and-forward queue: %s" % (path, exc)) from exc

    def put_one(self, topic: str, payload: bytes, qos: int, retain: bool) -> int:
        """Append one non-coalescing row (an event) in its own commit; returns its id."""
        with self._lock:
            row_id = self._next_id
            # A single statement outside BEGIN is its own transaction: one commit, one WAL append.
            self._db.execute("INSERT INTO outbox (id, topic, payload, qos, retain, coalesce) VALUES (?, ?, ?, ?, ?, 0)",
                             (row_id, topic, payload, qos, 1 if retain else 0))
            self._next_id = row_id + 1
            self._count += 1
            if self._count > self.max_rows:
                self._evict_locked()
            return row_id

    def put_many(self, rows: list) -> int:
        """Append rows ``(topic, payload_bytes, qos, retain, coalesce)`` in one transaction.

        Returns the id of the last row.
        """
        with self._lock:
            db = self._db
            next_id = self._next_id
            count = self._count
            db.execute("BEGIN IMMEDIATE")
            try:
                for topic, payload, qos, retain, coalesce in rows:
                    if coalesce:
                        cur = db.execute("DELETE FROM outbox WHERE topic = ? AND coalesce = 1 AND id > ?",
                                         (topic, self.handed_id))
                        count -= cur.rowcount
                        self.coalesced += cur.rowcount
                    db.execute("INSERT INTO outbox (id, topic, payload, qos, retain, coalesce) VALUES (?, ?, ?, ?, ?, ?)",
                               (next_id, topic, payload, qos, 1 if retain else 0, 1 if coalesce else 0))
                    next_id += 1
                    count += 1
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            self._next_id, self._count = next_id, count
            if self._count > self.max_rows:
                self._evict_locked()
            return next_id - 1

    def _evict_locked(self) -> None:
        excess = self._count - self.max_rows
        cur = self._db.execute("DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?)", (excess,))
        self._count -= cur.rowcount
        self.evicted += cur.rowcount

    def next_rows(self, limit: int) -> list:
        """Up to ``limit`` rows not yet handed to paho, oldest first; marks them handed."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload, qos, retain FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                (self.handed_id, limit)).fetchall()
            if rows:
                self.handed_id = rows[-1][0]
            return rows

    def ack(self, ids: list) -> None:
        """Delete acknowledged rows (ids may already be gone: evicted, or a duplicate ack)."""
        if not ids:
            return
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            removed = 0
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                cur = db.execute("DELETE FROM outbox WHERE id IN (%s)" % ",".join("?" * len(chunk)), chunk)
                removed += cur.rowcount
            db.execute("COMMIT")
            self._count -= removed

    def mark_handed(self, row_id: int) -> bool:
        """Claim ``row_id`` as handed to paho if every older row already is (the fast path)."""
        with self._lock:
            if self.handed_id != row_id - 1:
                return False
            self.handed_id = row_id
            return True

    def __len__(self) -> int:
        return self._count

    def close(self) -> None:
        with self._lock:
            self._db.close()
