"""Byte-range bookkeeping for SACK: the receiver's reassembly queue (RFC 2018 §4)
and the sender's scoreboard (RFC 6675 §3).

Sequence numbers here are *unwrapped*: plain ints that never wrap, because the
connection converts wire values relative to its own left edge first.
"""

from __future__ import annotations

import bisect


class ReassemblyQueue:
    """Out-of-order data above RCV.NXT, kept as disjoint sorted byte runs."""

    __slots__ = ("_starts", "_data", "nbytes", "_recent")

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._data: list[bytes] = []
        self.nbytes = 0
        # A seq inside each recent arrival, the latest first: the order in
        # which SACK blocks are reported (RFC 2018 §4).
        self._recent: list[int] = []

    def __len__(self) -> int:
        return len(self._starts)

    def add(self, seq: int, data: bytes) -> int:
        """Store ``data`` at ``seq``, keeping only bytes not already held;
        returns how many bytes were new (fewer: a duplicate, RFC 2883)."""
        if not data:
            return 0
        recent = self._recent
        recent.insert(0, seq)
        if len(recent) > 8:
            del recent[8:]
        new = 0
        end = seq + len(data)
        starts, datas = self._starts, self._data
        i = bisect.bisect_right(starts, seq)
        if i and starts[i - 1] + len(datas[i - 1]) > seq:
            i -= 1  # the run before overlaps our start
        pieces: list[tuple[int, bytes]] = []
        pos = seq
        j = i
        while j < len(starts) and starts[j] < end:
            if starts[j] > pos:
                pieces.append((pos, bytes(data[pos - seq : starts[j] - seq])))
            pos = max(pos, starts[j] + len(datas[j]))
            j += 1
        if pos < end:
            pieces.append((pos, bytes(data[pos - seq :])))  # kept: never a view of the caller's buffer
        for start, piece in pieces:
            k = bisect.bisect_left(starts, start)
            starts.insert(k, start)
            datas.insert(k, piece)
            new += len(piece)
        self.nbytes += new
        return new

    def pop_ready(self, rcv_nxt: int) -> list[bytes]:
        """Remove and return the runs that continue the stream at ``rcv_nxt``."""
        out: list[bytes] = []
        starts, datas = self._starts, self._data
        while starts and starts[0] <= rcv_nxt:
            start = starts.pop(0)
            data = datas.pop(0)
            self.nbytes -= len(data)
            if start + len(data) > rcv_nxt:
                piece = data[rcv_nxt - start :]
                out.append(piece)
                rcv_nxt += len(piece)
        return out

    def blocks(self, limit: int) -> list[tuple[int, int]]:
        """Up to ``limit`` SACK blocks: the one holding the latest arrival
        first, then those of earlier arrivals, most recent first, so that each
        block is reported in several ACKs (RFC 2018 §4); blocks no recent
        arrival names follow, highest first."""
        merged: list[tuple[int, int]] = []
        start0 = end0 = -1
        for start, data in zip(self._starts, self._data):
            if end0 == start:
                end0 = start + len(data)
            else:
                if end0 >= 0:
                    merged.append((start0, end0))
                start0, end0 = start, start + len(data)
        if end0 < 0 or limit <= 0:
            return []
        merged.append((start0, end0))
        out: list[tuple[int, int]] = []
        for seq in self._recent:
            i = bisect.bisect_right(merged, (seq, 1 << 80)) - 1
            if i >= 0 and seq < merged[i][1] and merged[i] not in out:
                out.append(merged[i])
                if len(out) == limit:
                    return out
        for b in reversed(merged):
            if b not in out:
                out.append(b)
                if len(out) == limit:
                    break
        return out


class Scoreboard:
    """SACKed ranges above SND.UNA, disjoint and sorted (RFC 6675 §3)."""

    __slots__ = ("ranges", "sacked")

    def __init__(self) -> None:
        self.ranges: list[list[int]] = []
        self.sacked = 0

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def add(self, start: int, end: int) -> bool:
        """Record a SACK block; returns True if it told us anything new."""
        if end <= start:
            return False
        rs = self.ranges
        i = bisect.bisect_left(rs, [start])
        if i and rs[i - 1][1] >= start:
            i -= 1
        j = i
        new_start, new_end = start, end
        covered = 0
        while j < len(rs) and rs[j][0] <= end:
            new_start = min(new_start, rs[j][0])
            new_end = max(new_end, rs[j][1])
            covered += rs[j][1] - rs[j][0]
            j += 1
        added = (new_end - new_start) - covered
        if added <= 0:
            return False
        rs[i:j] = [[new_start, new_end]]
        self.sacked += added
        return True

    def advance(self, una: int) -> None:
        """Forget everything below the cumulative ACK."""
        rs = self.ranges
        while rs and rs[0][0] < una:
            if rs[0][1] <= una:
                self.sacked -= rs[0][1] - rs[0][0]
                rs.pop(0)
            else:
                self.sacked -= una - rs[0][0]
                rs[0][0] = una
                break

    def clear(self) -> None:
        self.ranges.clear()
        self.sacked = 0

    def sacked_below(self, seq: int) -> int:
        """SACKed bytes below ``seq``."""
        total = 0
        for start, end in self.ranges:
            if start >= seq:
                break
            total += min(end, seq) - start
        return total

    def covering(self, seq: int) -> int | None:
        """End of the SACKed range holding ``seq``, if any."""
        rs = self.ranges
        i = bisect.bisect_right(rs, [seq, 1 << 80]) - 1
        if i >= 0 and rs[i][0] <= seq < rs[i][1]:
            return rs[i][1]
        return None

    def next_start(self, seq: int) -> int | None:
        """Start of the first SACKed range beginning after ``seq``."""
        rs = self.ranges
        i = bisect.bisect_right(rs, [seq, 1 << 80])
        return rs[i][0] if i < len(rs) else None

    def next_hole(self, seq: int, limit: int) -> tuple[int, int] | None:
        """First un-SACKed run in [seq, limit)."""
        while seq < limit:
            end = self.covering(seq)
            if end is None:
                nxt = self.next_start(seq)
                return seq, min(limit, nxt if nxt is not None else limit)
            seq = end
        return None

    def hole_bytes(self, lo: int, hi: int) -> int:
        """Un-SACKed bytes in [lo, hi)."""
        if hi <= lo:
            return 0
        covered = 0
        for start, end in self.ranges:
            if end <= lo:
                continue
            if start >= hi:
                break
            covered += min(end, hi) - max(start, lo)
        return hi - lo - covered

    def lost_edge(self, threshold: int) -> int | None:
        """Highest seq below which holes count as lost: ``threshold`` bytes are SACKed
        above it (RFC 6675 §4 IsLost, counted in bytes)."""
        total = 0
        for start, end in reversed(self.ranges):
            total += end - start
            if total >= threshold:
                return start
        return None
