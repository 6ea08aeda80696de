-- Append-only trail of administrative actions, kept for compliance.
-- Written in the explicit BEGIN/COMMIT style; the runner removes the wrapper.
-- migrate:requires 001

-- migrate:up
BEGIN;

CREATE TABLE audit_logs (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       BIGINT REFERENCES users (id) ON DELETE SET NULL,
    action        TEXT NOT NULL,
    resource_type TEXT,
    resource_id   TEXT,
    details       JSONB NOT NULL DEFAULT '{}'::jsonb,
    ip_address    INET,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX audit_logs_user_id_idx ON audit_logs (user_id);

COMMENT ON TABLE audit_logs IS
    'Who did what and when; rows are inserted only, never updated or deleted.';
COMMENT ON COLUMN audit_logs.action IS
    'Verb such as user.login; keep values short and stable';

COMMIT;

-- migrate:down
BEGIN;

DROP INDEX IF EXISTS audit_logs_user_id_idx;
DROP TABLE IF EXISTS audit_logs;

COMMIT;
