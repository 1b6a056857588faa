"""The gateway: the HTTP edge of HowlerHire Jobs (triggers, Inngest events, instances)."""
