-- Invoices billed to a user (optionally under a contract), plus a
-- PL/pgSQL trigger that refreshes updated_at on every UPDATE.
-- migrate:requires 001, 003

-- migrate:up
CREATE TABLE invoices (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    contract_id  BIGINT REFERENCES contracts (id) ON DELETE SET NULL,
    amount       NUMERIC(15, 2) NOT NULL CHECK (amount >= 0),
    currency     CHAR(3) NOT NULL DEFAULT 'EUR',
    status       TEXT    NOT NULL DEFAULT 'draft'
                 CHECK (status IN ('draft', 'sent', 'paid', 'void')),
    due_on       DATE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX invoices_user_id_idx ON invoices (user_id);
CREATE INDEX invoices_contract_id_idx ON invoices (contract_id);

CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    -- Only touch the column when the row really changed.
    IF NEW IS DISTINCT FROM OLD THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END;
$$;

COMMENT ON FUNCTION set_updated_at() IS
    'Trigger helper; its BEGIN ... END block stamps updated_at with now()';

CREATE TRIGGER invoices_set_updated_at
    BEFORE UPDATE ON invoices
    FOR EACH ROW
    EXECUTE FUNCTION set_updated_at();

-- migrate:down
DROP TRIGGER IF EXISTS invoices_set_updated_at ON invoices;
DROP FUNCTION IF EXISTS set_updated_at();
DROP INDEX IF EXISTS invoices_contract_id_idx;
DROP INDEX IF EXISTS invoices_user_id_idx;
DROP TABLE IF EXISTS invoices;
