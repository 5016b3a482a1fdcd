"""rudp.ranges alone: the receiver's reassembly queue (RFC 2018 §4) and the
sender's SACK scoreboard (RFC 6675 §3, §4 IsLost).

Sequence numbers are unwrapped ints; ranges are half-open [start, end).
"""

from __future__ import annotations

import pytest

from rudp.core.ranges import ReassemblyQueue, Scoreboard

# --- ReassemblyQueue -------------------------------------------------------


def queue(*pieces: tuple[int, bytes]) -> ReassemblyQueue:
    q = ReassemblyQueue()
    for seq, data in pieces:
        q.add(seq, data)
    return q


def test_queue_empty() -> None:
    q = queue((5, b""))  # empty data is not stored
    assert (len(q), q.nbytes) == (0, 0)
    assert q.blocks(4) == []
    assert q.pop_ready(5) == []


def test_queue_disjoint_runs() -> None:
    q = queue((10, b"abc"), (20, b"xy"))
    assert (len(q), q.nbytes) == (2, 5)
    assert sorted(q.blocks(4)) == [(10, 13), (20, 22)]


def test_queue_duplicate_is_not_counted_twice() -> None:
    q = queue((10, b"abc"), (10, b"abc"), (11, b"b"))
    assert (len(q), q.nbytes) == (1, 3)
    assert q.blocks(4) == [(10, 13)]


def test_queue_overlap_keeps_only_new_bytes() -> None:
    # [10,14) held; [12,16) adds only [14,16). Bytes already held are kept.
    q = queue((10, b"abcd"), (12, b"CDEF"))
    assert q.nbytes == 6
    assert q.blocks(4) == [(10, 16)]
    assert b"".join(q.pop_ready(10)) == b"abcdEF"
    assert q.nbytes == 0


def test_queue_piece_spanning_several_runs_fills_the_gaps() -> None:
    # [10,12) and [14,16) held; [8,18) adds [8,10), [12,14) and [16,18).
    q = queue((10, b"bb"), (14, b"dd"), (8, b"ABCDEFGHIJ"))
    assert q.nbytes == 10
    assert q.blocks(4) == [(8, 18)]
    assert b"".join(q.pop_ready(8)) == b"ABbbEFddIJ"


def test_queue_adjacent_pieces_form_one_block() -> None:
    q = queue((12, b"cd"), (10, b"ab"), (14, b"ef"))
    assert q.nbytes == 6
    assert q.blocks(4) == [(10, 16)]


def test_pop_ready_needs_rcv_nxt_at_or_above_the_first_run() -> None:
    q = queue((10, b"abc"), (20, b"xyz"))
    assert q.pop_ready(5) == []  # hole [5,10): nothing is ready
    assert q.nbytes == 6
    assert q.pop_ready(10) == [b"abc"]  # stops at the hole [13,20)
    assert q.nbytes == 3
    assert q.blocks(4) == [(20, 23)]
    assert q.pop_ready(13) == []
    assert q.pop_ready(20) == [b"xyz"]
    assert (len(q), q.nbytes) == (0, 0)


def test_pop_ready_takes_contiguous_runs_together() -> None:
    q = queue((10, b"ab"), (12, b"cd"), (15, b"x"))
    assert b"".join(q.pop_ready(10)) == b"abcd"
    assert q.blocks(4) == [(15, 16)]
    assert q.nbytes == 1


def test_pop_ready_trims_bytes_below_rcv_nxt() -> None:
    q = queue((10, b"abcdef"))
    assert q.pop_ready(12) == [b"cdef"]
    assert q.nbytes == 0


def test_pop_ready_drops_runs_wholly_below_rcv_nxt() -> None:
    q = queue((10, b"ab"), (12, b"cd"), (20, b"z"))
    assert q.pop_ready(15) == []
    assert (len(q), q.nbytes) == (1, 1)
    assert q.blocks(4) == [(20, 21)]


def test_blocks_first_holds_the_latest_arrival() -> None:
    # RFC 2018 §4: the first SACK block MUST be the block holding the segment
    # that triggered this ACK.
    q = queue((10, b"a"), (30, b"c"), (20, b"b"))
    blocks = q.blocks(4)
    assert blocks[0] == (20, 21)
    assert sorted(blocks) == [(10, 11), (20, 21), (30, 31)]
    q.add(31, b"d")  # extends [30,31): the latest arrival's block is [30,32)
    assert q.blocks(4)[0] == (30, 32)


def test_blocks_latest_arrival_merged_with_neighbours() -> None:
    # The arrival [11,12) joins [10,11) and [12,13): the whole block goes first.
    q = queue((10, b"a"), (12, b"c"), (20, b"z"), (11, b"b"))
    assert q.blocks(4)[0] == (10, 13)


def test_blocks_limit() -> None:
    q = queue((10, b"a"), (20, b"b"), (30, b"c"), (40, b"d"), (25, b"x"))
    assert len(q.blocks(4)) == 4
    assert q.blocks(1) == [(25, 26)]
    assert q.blocks(3)[0] == (25, 26)
    assert q.blocks(0) == []


def test_blocks_after_the_first_in_recency_order() -> None:
    # Arrivals 30, 10, 20: the ACKs report [30], [10, 30], then [20, 10, 30].
    q = queue((30, b"c"), (10, b"a"), (20, b"b"))
    assert q.blocks(4) == [(20, 21), (10, 11), (30, 31)]


# --- Scoreboard ------------------------------------------------------------


def board(*blocks: tuple[int, int]) -> Scoreboard:
    sb = Scoreboard()
    for start, end in blocks:
        sb.add(start, end)
    return sb


def test_scoreboard_empty() -> None:
    sb = Scoreboard()
    assert not sb
    assert (sb.ranges, sb.sacked) == ([], 0)
    assert sb.lost_edge(1) is None


def test_scoreboard_add_and_merge() -> None:
    sb = Scoreboard()
    assert sb.add(10, 20) is True
    assert (sb.ranges, sb.sacked) == ([[10, 20]], 10)
    assert sb.add(5, 5) is False  # empty block
    assert sb.add(7, 3) is False  # inverted block
    assert sb.add(12, 18) is False  # nothing new
    assert sb.add(10, 20) is False  # duplicate
    assert sb.add(15, 25) is True  # overlap extends: +5
    assert (sb.ranges, sb.sacked) == ([[10, 25]], 15)
    assert sb.add(25, 30) is True  # adjacent merges: +5
    assert (sb.ranges, sb.sacked) == ([[10, 30]], 20)
    assert sb.add(40, 50) is True  # disjoint: +10
    assert (sb.ranges, sb.sacked) == ([[10, 30], [40, 50]], 30)
    assert sb.add(28, 42) is True  # bridges the gap: only [30,40) is new
    assert (sb.ranges, sb.sacked) == ([[10, 50]], 40)


def test_scoreboard_add_swallows_several_ranges() -> None:
    sb = board((10, 20), (30, 40), (50, 60))
    assert sb.add(0, 70) is True
    assert (sb.ranges, sb.sacked) == ([[0, 70]], 70)


def test_scoreboard_add_below_existing() -> None:
    sb = board((30, 40))
    assert sb.add(10, 20) is True
    assert (sb.ranges, sb.sacked) == ([[10, 20], [30, 40]], 20)


def test_scoreboard_advance() -> None:
    sb = board((10, 20), (30, 40))
    sb.advance(5)
    assert (sb.ranges, sb.sacked) == ([[10, 20], [30, 40]], 20)
    sb.advance(15)  # cuts into the first range
    assert (sb.ranges, sb.sacked) == ([[15, 20], [30, 40]], 15)
    sb.advance(20)
    assert (sb.ranges, sb.sacked) == ([[30, 40]], 10)
    sb.advance(35)
    assert (sb.ranges, sb.sacked) == ([[35, 40]], 5)
    sb.advance(100)
    assert (sb.ranges, sb.sacked) == ([], 0)
    assert not sb


def test_scoreboard_clear() -> None:
    sb = board((10, 20), (30, 40))
    sb.clear()
    assert (sb.ranges, sb.sacked) == ([], 0)


@pytest.mark.parametrize(
    ("seq", "expected"), [(0, 0), (10, 0), (15, 5), (25, 10), (35, 15), (40, 20), (99, 20)]
)
def test_sacked_below(seq: int, expected: int) -> None:
    assert board((10, 20), (30, 40)).sacked_below(seq) == expected


@pytest.mark.parametrize(
    ("seq", "expected"),
    [(9, None), (10, 20), (19, 20), (20, None), (29, None), (30, 40), (39, 40), (40, None)],
)
def test_covering(seq: int, expected: int | None) -> None:
    assert board((10, 20), (30, 40)).covering(seq) == expected


@pytest.mark.parametrize(
    ("seq", "expected"), [(0, 10), (9, 10), (10, 30), (15, 30), (29, 30), (30, None), (35, None)]
)
def test_next_start(seq: int, expected: int | None) -> None:
    # "beginning after seq": a range starting exactly at seq does not count.
    assert board((10, 20), (30, 40)).next_start(seq) == expected


@pytest.mark.parametrize(
    ("seq", "limit", "expected"),
    [
        (0, 50, (0, 10)),
        (0, 5, (0, 5)),  # cut at limit
        (10, 50, (20, 30)),  # skips the SACKed [10,20)
        (15, 50, (20, 30)),
        (22, 50, (22, 30)),
        (10, 25, (20, 25)),
        (30, 50, (40, 50)),  # nothing SACKed above 40: the hole runs to limit
        (30, 40, None),  # all of [30,40) is SACKed
        (10, 20, None),
        (50, 50, None),
    ],
)
def test_next_hole(seq: int, limit: int, expected: tuple[int, int] | None) -> None:
    assert board((10, 20), (30, 40)).next_hole(seq, limit) == expected


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [
        (0, 50, 30),  # 50 - 20 SACKed
        (15, 35, 10),  # 20 - (5 + 5)
        (10, 20, 0),
        (20, 30, 10),
        (0, 10, 10),
        (5, 5, 0),
        (30, 10, 0),
    ],
)
def test_hole_bytes(lo: int, hi: int, expected: int) -> None:
    assert board((10, 20), (30, 40)).hole_bytes(lo, hi) == expected


# RFC 6675 §4 IsLost(SeqNum): lost once more than (DupThresh - 1) * SMSS bytes
# above SeqNum are SACKed. With SMSS = 100 and DupThresh = 3 that is > 200
# bytes, i.e. a byte threshold of 201 (as the connection passes it).
SMSS = 100
LOST = (3 - 1) * SMSS + 1


def test_lost_edge_three_segments_sacked() -> None:
    # SACKed [100,200), [300,400), [500,600). Hole [0,100) has 300 bytes SACKed
    # above it: lost. Hole [200,300) has only 200 above it: not lost.
    sb = board((100, 200), (300, 400), (500, 600))
    assert sb.lost_edge(LOST) == 100


def test_lost_edge_two_segments_sacked() -> None:
    # 200 bytes SACKed in all: not more than 200, so no hole is lost yet.
    assert board((300, 400), (500, 600)).lost_edge(LOST) is None


def test_lost_edge_one_large_range() -> None:
    # 300 bytes in a single range are enough: everything below 300 is lost.
    assert board((300, 600)).lost_edge(LOST) == 300


def test_lost_edge_threshold_is_inclusive() -> None:
    # "threshold bytes are SACKed above it": 200 >= 200.
    assert board((300, 400), (500, 600)).lost_edge(200) == 300
