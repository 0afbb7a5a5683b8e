"""Test support code shared by the test groups: scripted servers and helpers."""
