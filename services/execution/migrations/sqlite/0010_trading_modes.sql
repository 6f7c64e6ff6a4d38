-- Paper before live: where each tenant's orders go, and which broker each
-- block (and each run, once transmitted) was sent to.
CREATE TABLE trading_modes (
    tenant_id  TEXT        NOT NULL PRIMARY KEY,
    mode       TEXT        NOT NULL CHECK (mode IN ('paper', 'live')),
    changed_by TEXT        NOT NULL,
    changed_at TEXT NOT NULL
);

ALTER TABLE block_orders ADD COLUMN broker TEXT NOT NULL DEFAULT 'paper';
ALTER TABLE runs ADD COLUMN broker TEXT;
