"""Fake exchanges on loopback that speak each exchange's real protocol, quirks included.

Shared by the tests and by ``bench/``; nothing here reaches the internet.
"""
