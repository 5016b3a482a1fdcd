"""rudp.buffers alone: the send buffer and the receive queue.

Sequence numbers are unwrapped ints. The send buffer starts at ISS + 1 = 1000
in every test, so byte k of the payload has sequence number 1000 + k.
"""

from __future__ import annotations

from rudp.core.buffers import RecvQueue, SendBuffer

START = 1000  # ISS + 1: the first data byte


def filled(n: int) -> tuple[SendBuffer, bytes]:
    """A send buffer holding ``n`` distinct-ish bytes from START on."""
    payload = bytes(i % 251 for i in range(n))
    buf = SendBuffer(START)
    buf.append(payload)
    return buf, payload


def live(buf: SendBuffer) -> bytes:
    """The unacknowledged bytes, as the output path reads them."""
    return bytes(buf.data[buf.dead :])


# --- SendBuffer --------------------------------------------------------------


def test_sendbuffer_empty() -> None:
    buf = SendBuffer(START)
    assert (buf.seq, buf.dead, buf.end, len(buf), bytes(buf.data)) == (START, 0, START, 0, b"")


def test_sendbuffer_append_moves_end() -> None:
    buf = SendBuffer(START)
    buf.append(b"abc")
    assert (buf.end, len(buf)) == (1003, 3)
    buf.append(bytearray(b"de"))
    buf.append(memoryview(b"fgh"))
    assert (buf.end, len(buf), bytes(buf.data)) == (1008, 8, b"abcdefgh")
    assert buf.seq == START  # appending never moves the front


def test_release_partial_ack_returns_freed_bytes() -> None:
    buf, payload = filled(100)
    assert buf.release(1010) == 10
    assert len(buf) == 90
    assert live(buf) == payload[10:]
    assert buf.release(1035) == 25  # counted from the previous ack, not from START
    assert len(buf) == 65
    assert live(buf) == payload[35:]
    assert buf.end == 1100  # acks never move the end


def test_release_same_ack_twice_frees_nothing_more() -> None:
    buf, _ = filled(100)
    assert buf.release(1030) == 30
    assert buf.release(1030) == 0
    assert len(buf) == 70


def test_release_of_syn_only_frees_no_data() -> None:
    # The ACK of our SYN is ISS + 1 = START: sequence space, but no data byte.
    buf, _ = filled(100)
    assert buf.release(START) == 0
    assert len(buf) == 100


def test_release_ack_of_fin_frees_only_data() -> None:
    # The FIN takes the sequence number after the last data byte (RFC 9293
    # §3.4): an ACK of END + 1 covers 100 data bytes and the FIN, and only the
    # 100 are data.
    buf, _ = filled(100)
    assert buf.release(1101) == 100
    assert len(buf) == 0
    assert buf.end == 1100


def test_release_ack_of_fin_after_partial_ack() -> None:
    buf, _ = filled(100)
    assert buf.release(1020) == 20
    assert buf.release(1101) == 80
    assert len(buf) == 0


def test_dead_front_is_kept_below_half_the_buffer() -> None:
    # 1000 bytes; acks up to 499 bytes leave them in place as ``dead``: 499 < 1000 / 2.
    buf, payload = filled(1000)
    assert buf.release(1499) == 499
    assert (buf.seq, buf.dead, len(buf.data)) == (1000, 499, 1000)
    assert len(buf) == 501
    assert live(buf) == payload[499:]


def test_dead_front_is_cut_at_half_the_buffer() -> None:
    # The 500th acked byte makes dead = len(data) / 2: the front is cut off in one go.
    buf, payload = filled(1000)
    buf.release(1499)
    assert buf.release(1500) == 1
    assert (buf.seq, buf.dead, len(buf.data)) == (1500, 0, 500)
    assert len(buf) == 500
    assert bytes(buf.data) == payload[500:]
    assert buf.end == 2000


def test_one_big_ack_cuts_at_once() -> None:
    buf, payload = filled(1000)
    assert buf.release(1800) == 800
    assert (buf.seq, buf.dead, len(buf.data)) == (1800, 0, 200)
    assert bytes(buf.data) == payload[800:]


def test_cut_threshold_follows_the_shrunken_buffer() -> None:
    # After a cut to 500 bytes the next cut comes at 250 dead bytes, not 500.
    buf, payload = filled(1000)
    buf.release(1500)
    assert buf.release(1749) == 249
    assert (buf.seq, buf.dead, len(buf.data)) == (1500, 249, 500)
    assert buf.release(1750) == 1
    assert (buf.seq, buf.dead, len(buf.data)) == (1750, 0, 250)
    assert bytes(buf.data) == payload[750:]


def test_append_while_dead_bytes_are_kept() -> None:
    buf, payload = filled(100)
    buf.release(1040)  # 40 dead < 50: kept
    assert (buf.seq, buf.dead) == (1000, 40)
    buf.append(b"xyz")
    assert buf.end == 1103
    assert len(buf) == 63
    assert live(buf) == payload[40:] + b"xyz"
    # Half of the grown buffer is 103 // 2 = 51 bytes: 50 dead are still kept...
    assert buf.release(1050) == 10
    assert (buf.seq, buf.dead, len(buf.data)) == (1000, 50, 103)
    # ...and 52 are cut.
    assert buf.release(1052) == 2
    assert (buf.seq, buf.dead, len(buf.data)) == (1052, 0, 51)
    assert bytes(buf.data) == payload[52:] + b"xyz"


def test_append_after_cut() -> None:
    buf, payload = filled(100)
    buf.release(1060)  # cut: seq = 1060
    buf.append(b"tail")
    assert (buf.seq, buf.end, len(buf)) == (1060, 1104, 44)
    assert bytes(buf.data) == payload[60:] + b"tail"


def test_clear_without_acks() -> None:
    buf, _ = filled(100)
    buf.clear()
    assert (buf.seq, buf.dead, buf.end, len(buf), bytes(buf.data)) == (1000, 0, 1000, 0, b"")


def test_clear_after_partial_ack_keeps_end_equal_to_seq() -> None:
    # 40 dead bytes still at the front: clear() must fold them into seq, or a
    # later append would place data at the wrong sequence numbers.
    buf, _ = filled(100)
    buf.release(1040)
    buf.clear()
    assert (buf.seq, buf.dead, buf.end, len(buf), bytes(buf.data)) == (1040, 0, 1040, 0, b"")
    buf.append(b"ab")
    assert (buf.seq, buf.end, len(buf)) == (1040, 1042, 2)


def test_clear_after_cut_and_more_dead_bytes() -> None:
    buf, _ = filled(100)
    buf.release(1060)  # cut: seq 1060, 40 live
    buf.release(1070)  # 10 dead < 20: kept
    assert (buf.seq, buf.dead) == (1060, 10)
    buf.clear()
    assert (buf.seq, buf.dead, buf.end, len(buf)) == (1070, 0, 1070, 0)


# --- RecvQueue ---------------------------------------------------------------


def queued(*chunks: bytes) -> RecvQueue:
    """A receive queue holding ``chunks`` in order, as input.py fills it."""
    q = RecvQueue()
    for c in chunks:
        q.chunks.append(c)
        q.queued += len(c)
    return q


def test_recvqueue_empty() -> None:
    q = RecvQueue()
    assert (list(q.chunks), q.queued, len(q.ooo), q.ooo_fin, q.eof) == ([], 0, 0, None, False)
    assert q.read() == b""
    assert q.read(10) == b""
    assert q.queued == 0


def test_read_one_chunk_returns_it_without_copying() -> None:
    chunk = bytes(range(200))
    q = queued(chunk)
    data = q.read()
    assert data is chunk
    assert (list(q.chunks), q.queued) == ([], 0)


def test_read_max_at_least_queued_is_still_the_same_object() -> None:
    chunk = b"x" * 50
    q = queued(chunk)
    assert q.read(50) is chunk  # max == queued: nothing to split
    q = queued(chunk)
    assert q.read(1000) is chunk
    assert q.queued == 0


def test_read_several_chunks_joins_them() -> None:
    q = queued(b"hello", b" ", b"world")
    assert q.read() == b"hello world"
    assert (list(q.chunks), q.queued) == ([], 0)


def test_read_max_splits_one_chunk() -> None:
    q = queued(b"abcdef")
    assert q.read(4) == b"abcd"
    assert q.queued == 2
    assert b"".join(q.chunks) == b"ef"
    assert q.read() == b"ef"
    assert q.queued == 0


def test_read_max_splits_across_chunks() -> None:
    q = queued(b"hello", b"world")
    assert q.read(3) == b"hel"
    assert q.queued == 7
    assert b"".join(q.chunks) == b"loworld"
    assert q.read(5) == b"lowor"
    assert q.queued == 2
    assert q.read(-1) == b"ld"
    assert q.queued == 0


def test_read_zero_takes_nothing() -> None:
    q = queued(b"abc", b"de")
    assert q.read(0) == b""
    assert q.queued == 5
    assert q.read() == b"abcde"


def test_read_keeps_chunks_appended_after_a_split() -> None:
    q = queued(b"abcdef")
    q.read(2)
    q.chunks.append(b"gh")
    q.queued += 2
    assert q.queued == 6
    assert q.read() == b"cdefgh"


def test_drop_unread_empties_in_order_data_only() -> None:
    q = queued(b"abc", b"def")
    q.ooo.add(5000, b"later")
    q.eof = True
    q.drop_unread()
    assert (list(q.chunks), q.queued) == ([], 0)
    assert q.read() == b""
    assert q.ooo.nbytes == 5  # out-of-order data is release()'s business
    assert q.eof


def test_release_resets_the_reassembly_queue() -> None:
    q = queued(b"unread")
    q.ooo.add(5000, b"abc")
    q.ooo.add(6000, b"de")
    assert (len(q.ooo), q.ooo.nbytes) == (2, 5)
    q.release()
    assert (len(q.ooo), q.ooo.nbytes) == (0, 0)
    assert q.ooo.blocks(4) == []
    assert q.ooo.pop_ready(5000) == []
    # In-order data the user has not read yet survives: a finished
    # connection's last bytes stay readable.
    assert q.queued == 6
    assert q.read() == b"unread"


def test_read_chunk_gives_the_chunks_as_they_arrived_views_settled_first() -> None:
    """The transport hands data on chunk by chunk, uncopied; a run's views
    become one chunk, after the chunks before them."""
    q = RecvQueue()
    q.chunks.append(b"ab")
    q.queued += 2
    buf = bytearray(b"cdef")
    q.views.extend([memoryview(buf)[:2], memoryview(buf)[2:]])
    q.queued += 4
    first = q.read_chunk()
    assert first == b"ab" and q.queued == 4
    second = q.read_chunk()
    buf[:] = b"zzzz"  # the receive buffer is reused: the chunk is a copy
    assert second == b"cdef" and q.queued == 0
    assert q.read_chunk() == b""
