"""Measurements, each behind a ``tessera bench`` command (``tessera project --validate``
for :mod:`.validation`): they use the rest of ``host`` and the simulators, and only
:mod:`host.cli`, ``tb/speed_tb.py`` and the tests import them."""
