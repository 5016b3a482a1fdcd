"""The sans-IO TCP engine: no sockets, no asyncio, no clock, no randomness it
was not given (tests/test_layers.py enforces this). Inputs are datagrams,
user calls and timer expiries, each with ``now``; outputs are datagrams, the
next deadline and events."""

#: True when the engine runs as mypyc-compiled extension modules
#: (``RUDP_COMPILE=1`` at install, setup.py), False for the pure Python source.
COMPILED: bool = not __file__.endswith(".py")
