-- Cash vs margin accounts: a cash account never goes below zero; a margin
-- account down to minus its margin limit.
ALTER TABLE accounts ADD COLUMN account_type TEXT NOT NULL DEFAULT 'cash'
    CHECK (account_type IN ('cash', 'margin'));
ALTER TABLE accounts ADD COLUMN margin_limit TEXT NOT NULL DEFAULT '0';
-- Withdrawals requested and not yet settled or canceled: cash held back,
-- kept in step with cash_movements by the cash store.
ALTER TABLE accounts ADD COLUMN earmarked TEXT NOT NULL DEFAULT '0';
UPDATE accounts SET earmarked = (
    SELECT CAST(ROUND(SUM(CAST(amount AS REAL)), 2) AS TEXT) FROM cash_movements m
    WHERE m.tenant_id = accounts.tenant_id AND m.account_id = accounts.id
      AND m.kind = 'withdrawal' AND m.status IN ('pending', 'acknowledged'))
WHERE EXISTS (
    SELECT 1 FROM cash_movements m
    WHERE m.tenant_id = accounts.tenant_id AND m.account_id = accounts.id
      AND m.kind = 'withdrawal' AND m.status IN ('pending', 'acknowledged'));

-- A run still proposed or queued at expires_at ends TIMEOUT. NULL on rows
-- written before: they never expire.
ALTER TABLE runs ADD COLUMN expires_at TEXT;
-- Runs allowed to start outside regular hours (their algorithm says so).
ALTER TABLE runs ADD COLUMN extended_hours BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX runs_expiring ON runs (expires_at) WHERE status IN ('proposed', 'queued');
