-- Multi-tenant core in its own "platform" schema: organizations own
-- projects, and each project has one set of API credentials.

-- migrate:up
CREATE SCHEMA platform;

CREATE TABLE platform.organizations (
    id            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name          TEXT NOT NULL,
    slug          TEXT NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9-]+$'),
    billing_email TEXT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE platform.projects (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id UUID NOT NULL REFERENCES platform.organizations (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    ref             TEXT NOT NULL UNIQUE CHECK (length(ref) = 16),
    region          TEXT NOT NULL DEFAULT 'eu-west-1',
    status          TEXT NOT NULL DEFAULT 'active'
                    CHECK (status IN ('active', 'paused', 'removed')),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX projects_organization_id_idx ON platform.projects (organization_id);

CREATE TABLE platform.credentials (
    id               UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id       UUID NOT NULL UNIQUE REFERENCES platform.projects (id) ON DELETE CASCADE,
    anon_key         TEXT NOT NULL,
    service_role_key TEXT NOT NULL,
    jwt_secret       TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

COMMENT ON TABLE platform.credentials IS
    'Per-project secrets: anon key is public; service key and JWT secret are not.';

-- migrate:down
DROP TABLE IF EXISTS platform.credentials;
DROP INDEX IF EXISTS platform.projects_organization_id_idx;
DROP TABLE IF EXISTS platform.projects;
DROP TABLE IF EXISTS platform.organizations;
DROP SCHEMA IF EXISTS platform;
