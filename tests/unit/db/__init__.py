"""Unit tests of the data layer: week boundaries, merge rules, configuration."""
