-- In-app notifications addressed to a single user, with a delivery channel enum.
-- migrate:requires 001

-- migrate:up
CREATE TYPE notification_channel AS ENUM ('in_app', 'email', 'sms', 'push');

CREATE TABLE notifications (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    channel    notification_channel NOT NULL DEFAULT 'in_app',
    title      TEXT NOT NULL,
    body       TEXT,
    read_at    TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX notifications_user_id_idx ON notifications (user_id);

-- migrate:down
DROP INDEX IF EXISTS notifications_user_id_idx;
DROP TABLE IF EXISTS notifications;
DROP TYPE IF EXISTS notification_channel;
