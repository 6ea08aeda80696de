-- Billing for platform organizations: plan columns, subscriptions,
-- stored payment methods and the invoice history.
-- migrate:requires 007

-- migrate:up
ALTER TABLE platform.organizations
    ADD COLUMN plan                TEXT NOT NULL DEFAULT 'free'
                                   CHECK (plan IN ('free', 'pro', 'team', 'enterprise')),
    ADD COLUMN billing_customer_id TEXT UNIQUE;

CREATE TABLE platform.subscriptions (
    id                   UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id      UUID NOT NULL REFERENCES platform.organizations (id) ON DELETE CASCADE,
    plan                 TEXT NOT NULL,
    status               TEXT NOT NULL DEFAULT 'active'
                         CHECK (status IN ('trialing', 'active', 'past_due', 'canceled')),
    current_period_start TIMESTAMPTZ NOT NULL,
    current_period_end   TIMESTAMPTZ NOT NULL,
    canceled_at          TIMESTAMPTZ,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX subscriptions_organization_id_idx ON platform.subscriptions (organization_id);

CREATE TABLE platform.payment_methods (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id UUID NOT NULL REFERENCES platform.organizations (id) ON DELETE CASCADE,
    provider_ref    TEXT NOT NULL UNIQUE,
    card_brand      TEXT,
    card_last4      CHAR(4),
    is_default      BOOLEAN NOT NULL DEFAULT false,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE platform.billing_invoices (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id UUID NOT NULL REFERENCES platform.organizations (id) ON DELETE CASCADE,
    subscription_id UUID REFERENCES platform.subscriptions (id) ON DELETE SET NULL,
    amount_cents    BIGINT NOT NULL CHECK (amount_cents >= 0),
    currency        CHAR(3) NOT NULL DEFAULT 'USD',
    issued_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    paid_at         TIMESTAMPTZ
);

CREATE INDEX billing_invoices_organization_id_idx ON platform.billing_invoices (organization_id);

-- migrate:down
DROP INDEX IF EXISTS platform.billing_invoices_organization_id_idx;
DROP TABLE IF EXISTS platform.billing_invoices;
DROP TABLE IF EXISTS platform.payment_methods;
DROP INDEX IF EXISTS platform.subscriptions_organization_id_idx;
DROP TABLE IF EXISTS platform.subscriptions;
ALTER TABLE platform.organizations
    DROP COLUMN IF EXISTS billing_customer_id,
    DROP COLUMN IF EXISTS plan;
