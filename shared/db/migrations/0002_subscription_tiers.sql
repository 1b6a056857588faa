-- The three subscription tiers (SPEC §6): generations a week, -1 = unlimited.
-- NOT EXISTS rather than ON CONFLICT, so it also runs where the web app's table lacks
-- the unique index on name.
INSERT INTO subscription_tiers (name, generation_limit_weekly, job_discovery_limit_daily)
SELECT tier.name, tier.generation_limit_weekly, tier.job_discovery_limit_daily
FROM (VALUES ('free', 5, -1), ('pro', 50, -1), ('premium', -1, -1))
    AS tier (name, generation_limit_weekly, job_discovery_limit_daily)
WHERE NOT EXISTS (SELECT 1 FROM subscription_tiers existing WHERE existing.name = tier.name);
