-- Cash vs margin accounts: a cash account never goes below zero; a margin
-- account down to minus its margin limit.
ALTER TABLE accounts ADD COLUMN account_type TEXT NOT NULL DEFAULT 'cash'
    CHECK (account_type IN ('cash', 'margin'));
ALTER TABLE accounts ADD COLUMN margin_limit NUMERIC NOT NULL DEFAULT 0;
-- Withdrawals requested and not yet settled or canceled: cash held back,
-- kept in step with cash_movements by the cash store.
ALTER TABLE accounts ADD COLUMN earmarked NUMERIC NOT NULL DEFAULT 0;
UPDATE accounts SET earmarked = open.total
FROM (SELECT tenant_id, account_id, SUM(amount) AS total FROM cash_movements
      WHERE kind = 'withdrawal' AND status IN ('pending', 'acknowledged')
      GROUP BY tenant_id, account_id) AS open
WHERE accounts.tenant_id = open.tenant_id AND accounts.id = open.account_id;

-- A run still proposed or queued at expires_at ends TIMEOUT. NULL on rows
-- written before: they never expire.
ALTER TABLE runs ADD COLUMN expires_at TIMESTAMPTZ;
-- Runs allowed to start outside regular hours (their algorithm says so).
ALTER TABLE runs ADD COLUMN extended_hours BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX runs_expiring ON runs (expires_at) WHERE status IN ('proposed', 'queued');
