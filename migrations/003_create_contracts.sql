-- Customer contracts owned by a user, with a simple lifecycle status.
-- migrate:requires 001

-- migrate:up
CREATE TABLE contracts (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    reference  TEXT    NOT NULL UNIQUE,
    title      TEXT    NOT NULL,
    status     TEXT    NOT NULL DEFAULT 'draft'
               CHECK (status IN ('draft', 'active', 'terminated')),
    starts_on  DATE,
    ends_on    DATE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT contracts_period_valid CHECK (ends_on IS NULL OR starts_on IS NULL OR ends_on >= starts_on)
);

CREATE INDEX contracts_user_id_idx ON contracts (user_id);

-- migrate:down
DROP INDEX IF EXISTS contracts_user_id_idx;
DROP TABLE IF EXISTS contracts;
