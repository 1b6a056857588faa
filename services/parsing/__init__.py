"""The parsing service: resume-parsing and profile-sync."""
