"""Test support: helpers shared by the test suites (servers, processes, fakes)."""
