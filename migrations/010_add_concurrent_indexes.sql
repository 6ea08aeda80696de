-- Lookup indexes on busy tables, built CONCURRENTLY so writes are not
-- blocked; PostgreSQL forbids that inside a transaction block.
-- migrate:no-transaction
-- migrate:requires 003, 004, 005, 006

-- migrate:up
CREATE INDEX CONCURRENTLY IF NOT EXISTS invoices_status_due_on_idx
    ON invoices (status, due_on);
CREATE INDEX CONCURRENTLY IF NOT EXISTS contracts_status_idx
    ON contracts (status) WHERE status <> 'terminated';
CREATE INDEX CONCURRENTLY IF NOT EXISTS audit_logs_resource_idx
    ON audit_logs (resource_type, resource_id, created_at DESC);
CREATE INDEX CONCURRENTLY IF NOT EXISTS notifications_unread_idx
    ON notifications (user_id, created_at DESC) WHERE read_at IS NULL;

-- migrate:down
DROP INDEX CONCURRENTLY IF EXISTS notifications_unread_idx;
DROP INDEX CONCURRENTLY IF EXISTS audit_logs_resource_idx;
DROP INDEX CONCURRENTLY IF EXISTS contracts_status_idx;
DROP INDEX CONCURRENTLY IF EXISTS invoices_status_due_on_idx;
