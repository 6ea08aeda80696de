-- Data only: registers the Lancio organization that exists in production.
-- Other environments never receive this row.
-- migrate:env production
-- migrate:requires 008, 009

-- migrate:up
INSERT INTO platform.organizations (name, slug, billing_email, plan)
VALUES ('Lancio', 'lancio', 'billing@lancio.example', 'enterprise')
ON CONFLICT (slug) DO NOTHING;

-- migrate:down
DELETE FROM platform.organizations WHERE slug = 'lancio';
