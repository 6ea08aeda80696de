-- Application accounts: one row per person who can sign in.
-- Email uniqueness is case-insensitive via an index on lower(email).

-- migrate:up
CREATE TABLE users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email         TEXT        NOT NULL,
    password_hash TEXT        NOT NULL,
    full_name     TEXT,
    is_active     BOOLEAN     NOT NULL DEFAULT true,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT users_email_format CHECK (position('@' IN email) > 1)
);

CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));

-- migrate:down
DROP INDEX IF EXISTS users_email_lower_key;
DROP TABLE IF EXISTS users;
