"""Tests of the data layer against real databases and the PostgREST stand-in."""
