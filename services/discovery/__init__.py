"""The discovery service: job-discovery across job boards, and the daily fan-out."""
