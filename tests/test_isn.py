"""rudp.isn alone: ISN = M + F(4-tuple, secret) (RFC 6528 §3, RFC 9293 §3.4.1).

M is a timer ticking every 4 microseconds, i.e. 250,000 ticks per second, and
the sum is taken modulo 2**32. Secrets are fixed so every check is deterministic.
"""

from __future__ import annotations

import pytest

from rudp.core.isn import IsnGenerator

MOD = 2**32
SECRET = bytes(range(16))
PEER = ("192.0.2.1", 4000)


def test_same_secret_same_inputs_same_isn() -> None:
    a, b = IsnGenerator(SECRET), IsnGenerator(SECRET)
    assert a(12.5, PEER, 80, 5555) == b(12.5, PEER, 80, 5555)
    assert a(12.5, PEER, 80, 5555) == a(12.5, PEER, 80, 5555)


@pytest.mark.parametrize(
    "other",
    [
        (("192.0.2.2", 4000), 80, 5555),  # another peer host
        (("192.0.2.1", 4001), 80, 5555),  # another peer UDP port
        (PEER, 81, 5555),  # another local port
        (PEER, 80, 5556),  # another remote port
        (PEER, 5555, 80),  # ports swapped
    ],
)
def test_each_part_of_the_tuple_changes_the_isn(other: tuple[object, int, int]) -> None:
    # RFC 6528 §3: F() is a hash of the connection-id, so another connection-id
    # lands elsewhere in the sequence space at the same moment.
    isn = IsnGenerator(SECRET)
    assert isn(0.0, PEER, 80, 5555) != isn(0.0, *other)


def test_different_secrets_differ() -> None:
    # RFC 6528 §3: the secret key keeps F() from being computed off-path.
    a, b = IsnGenerator(SECRET), IsnGenerator(bytes(16))
    assert a(0.0, PEER, 80, 5555) != b(0.0, PEER, 80, 5555)


def test_secret_is_required() -> None:
    # The core draws no randomness itself: the owner must hand it the key.
    with pytest.raises(TypeError):
        IsnGenerator()  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("now", "ticks"),
    [
        (1.0, 250_000),
        (0.5, 125_000),
        (3.0, 750_000),
        (2**-10, 244),  # 976.5625 us is 244 whole 4-us ticks
    ],
)
def test_clock_advances_every_four_microseconds(now: float, ticks: int) -> None:
    # RFC 6528 §3 / RFC 9293 §3.4.1: M is incremented every 4 microseconds.
    isn = IsnGenerator(SECRET)
    base = isn(0.0, PEER, 80, 5555)
    assert isn(now, PEER, 80, 5555) == (base + ticks) % MOD


def test_clock_wraps_modulo_2_32() -> None:
    # 17_180 s * 250_000 = 4_295_000_000 = 2**32 + 32_704.
    isn = IsnGenerator(SECRET)
    base = isn(0.0, PEER, 80, 5555)
    later = isn(17_180.0, PEER, 80, 5555)
    assert 0 <= later < MOD
    assert later == (base + 32_704) % MOD
