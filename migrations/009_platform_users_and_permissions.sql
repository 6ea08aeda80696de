-- Platform accounts, their role in each organization, and per-project
-- access grants.
-- migrate:requires 007, 008

-- migrate:up
CREATE TABLE platform.users (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    email           TEXT NOT NULL UNIQUE,
    hashed_password TEXT NOT NULL,
    display_name    TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_login_at   TIMESTAMPTZ
);

CREATE TABLE platform.user_roles (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         UUID NOT NULL REFERENCES platform.users (id) ON DELETE CASCADE,
    organization_id UUID NOT NULL REFERENCES platform.organizations (id) ON DELETE CASCADE,
    role            TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (user_id, organization_id)
);

CREATE TABLE platform.permissions (
    id           UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      UUID NOT NULL REFERENCES platform.users (id) ON DELETE CASCADE,
    project_id   UUID NOT NULL REFERENCES platform.projects (id) ON DELETE CASCADE,
    access_level TEXT NOT NULL CHECK (access_level IN ('read', 'write', 'admin')),
    granted_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (user_id, project_id)
);

CREATE INDEX user_roles_organization_id_idx ON platform.user_roles (organization_id);
CREATE INDEX permissions_project_id_idx ON platform.permissions (project_id);

-- migrate:down
DROP INDEX IF EXISTS platform.permissions_project_id_idx;
DROP INDEX IF EXISTS platform.user_roles_organization_id_idx;
DROP TABLE IF EXISTS platform.permissions;
DROP TABLE IF EXISTS platform.user_roles;
DROP TABLE IF EXISTS platform.users;
