-- One email_send_history row per (user, email type, week) for weekly emails: the row is
-- claimed ('queued') before the send, so a second firing, a restart or a re-run days
-- later (when Resend has forgotten its idempotency keys) never mails a user twice for
-- one week. Rows without a week (e.g. resume-ready emails) are not constrained here.
CREATE UNIQUE INDEX IF NOT EXISTS email_send_history_user_type_week
    ON email_send_history (user_id, email_type, (metadata ->> 'week'))
    WHERE metadata ? 'week';
CREATE INDEX IF NOT EXISTS email_send_history_batch_idx
    ON email_send_history ((metadata ->> 'batch'))
    WHERE metadata ? 'batch';
