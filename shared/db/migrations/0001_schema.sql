-- The tables of SPEC §6 in a plain PostgreSQL (13+): no Supabase `auth` schema needed,
-- so user_id columns are plain uuids here (on hosted Supabase they reference auth.users).
-- Every statement is IF NOT EXISTS: pointed at a database that already holds the web
-- app's tables, this adds only what is missing (the constraints below) and fails loudly
-- if existing rows violate them.

CREATE OR REPLACE FUNCTION howlerhire_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE TABLE IF NOT EXISTS subscription_tiers (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL,
    generation_limit_weekly integer NOT NULL,        -- -1 = unlimited
    job_discovery_limit_daily integer NOT NULL DEFAULT -1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS subscription_tiers_name_key ON subscription_tiers (name);

CREATE TABLE IF NOT EXISTS user_subscriptions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL,
    tier_id uuid NOT NULL REFERENCES subscription_tiers (id),
    status text NOT NULL DEFAULT 'active',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- One active subscription per user, so "the user's tier" has one answer.
CREATE UNIQUE INDEX IF NOT EXISTS user_subscriptions_one_active
    ON user_subscriptions (user_id) WHERE status = 'active';

CREATE TABLE IF NOT EXISTS profiles (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL,
    email text,
    full_name text,
    headline text,
    summary text,
    location text,
    linkedin_url text,
    github_handle text,
    skills jsonb DEFAULT '[]'::jsonb,
    experience jsonb DEFAULT '[]'::jsonb,
    education jsonb DEFAULT '[]'::jsonb,
    preferred_roles jsonb DEFAULT '[]'::jsonb,
    preferred_locations jsonb DEFAULT '[]'::jsonb,
    remote_preference text,
    min_salary integer,
    max_salary integer,
    portfolio_urls jsonb DEFAULT '[]'::jsonb,
    email_preferences jsonb DEFAULT '{"jobMatches": true, "resumeReady": true, "weeklySummary": true, "applicationUpdates": true, "marketingEmails": false}'::jsonb,
    onboarding_completed boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT profiles_remote_preference_check
        CHECK (remote_preference IS NULL OR remote_preference IN ('remote', 'hybrid', 'onsite')),
    CONSTRAINT profiles_skills_array CHECK (skills IS NULL OR jsonb_typeof(skills) = 'array'),
    CONSTRAINT profiles_experience_array
        CHECK (experience IS NULL OR jsonb_typeof(experience) = 'array'),
    CONSTRAINT profiles_education_array
        CHECK (education IS NULL OR jsonb_typeof(education) = 'array'),
    CONSTRAINT profiles_preferred_roles_array
        CHECK (preferred_roles IS NULL OR jsonb_typeof(preferred_roles) = 'array'),
    CONSTRAINT profiles_preferred_locations_array
        CHECK (preferred_locations IS NULL OR jsonb_typeof(preferred_locations) = 'array'),
    CONSTRAINT profiles_portfolio_urls_array
        CHECK (portfolio_urls IS NULL OR jsonb_typeof(portfolio_urls) = 'array'),
    CONSTRAINT profiles_email_preferences_object
        CHECK (email_preferences IS NULL OR jsonb_typeof(email_preferences) = 'object')
);
CREATE UNIQUE INDEX IF NOT EXISTS profiles_user_id_key ON profiles (user_id);

CREATE TABLE IF NOT EXISTS resumes (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL,
    profile_id uuid REFERENCES profiles (id) ON DELETE SET NULL,
    name text,
    is_default boolean NOT NULL DEFAULT false,
    original_file_url text,
    original_file_name text,
    original_file_type text,
    parsed_content text,
    structured_data jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS resumes_user_default_idx ON resumes (user_id) WHERE is_default;

CREATE TABLE IF NOT EXISTS jobs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL,
    external_id text,
    source text,
    source_url text,
    title text NOT NULL,
    company text,
    company_logo text,
    location text,
    is_remote boolean DEFAULT false,
    description text,
    requirements jsonb,
    salary_min integer,
    salary_max integer,
    salary_currency text,
    employment_type text,
    experience_level text,
    match_score integer,
    match_reasons jsonb,
    ats_score integer,
    matched_skills jsonb DEFAULT '[]'::jsonb,
    missing_required_skills jsonb DEFAULT '[]'::jsonb,
    missing_preferred_skills jsonb DEFAULT '[]'::jsonb,
    status text NOT NULL DEFAULT 'new',
    posted_at timestamptz,
    discovered_at timestamptz NOT NULL DEFAULT now(),
    applied_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- Job discovery inserts with ON CONFLICT DO NOTHING on this key: one row per posting
-- per user, however many discovery runs race.
CREATE UNIQUE INDEX IF NOT EXISTS jobs_user_id_source_url_key ON jobs (user_id, source_url);
CREATE INDEX IF NOT EXISTS jobs_user_discovered_idx ON jobs (user_id, discovered_at);
CREATE INDEX IF NOT EXISTS jobs_user_applied_idx ON jobs (user_id, applied_at)
    WHERE status = 'applied';

CREATE TABLE IF NOT EXISTS job_applications (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL,
    job_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    resume_id uuid REFERENCES resumes (id) ON DELETE SET NULL,
    tailored_resume text,
    cover_letter text,
    generation_model text,
    status text NOT NULL DEFAULT 'generating',
    error_message text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS job_applications_user_status_created_idx
    ON job_applications (user_id, status, created_at);

CREATE TABLE IF NOT EXISTS email_send_history (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid,
    email_type text NOT NULL,
    recipient_email text NOT NULL,
    subject text,
    message_id text,
    status text NOT NULL DEFAULT 'sent',
    error_message text,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- At most one *sent* email per idempotency key (a weekly summary per user and week),
-- so a crash or a second cron firing cannot record, or be told to send, a second one.
-- Failed attempts may repeat. The key lives in metadata, keeping SPEC §6's columns.
CREATE UNIQUE INDEX IF NOT EXISTS email_send_history_sent_key
    ON email_send_history ((metadata ->> 'idempotency_key')) WHERE status = 'sent';
CREATE INDEX IF NOT EXISTS email_send_history_user_created_idx
    ON email_send_history (user_id, created_at);

CREATE OR REPLACE TRIGGER subscription_tiers_touch BEFORE UPDATE ON subscription_tiers
    FOR EACH ROW EXECUTE FUNCTION howlerhire_touch_updated_at();
CREATE OR REPLACE TRIGGER user_subscriptions_touch BEFORE UPDATE ON user_subscriptions
    FOR EACH ROW EXECUTE FUNCTION howlerhire_touch_updated_at();
CREATE OR REPLACE TRIGGER profiles_touch BEFORE UPDATE ON profiles
    FOR EACH ROW EXECUTE FUNCTION howlerhire_touch_updated_at();
CREATE OR REPLACE TRIGGER resumes_touch BEFORE UPDATE ON resumes
    FOR EACH ROW EXECUTE FUNCTION howlerhire_touch_updated_at();
CREATE OR REPLACE TRIGGER jobs_touch BEFORE UPDATE ON jobs
    FOR EACH ROW EXECUTE FUNCTION howlerhire_touch_updated_at();
CREATE OR REPLACE TRIGGER job_applications_touch BEFORE UPDATE ON job_applications
    FOR EACH ROW EXECUTE FUNCTION howlerhire_touch_updated_at();
