-- Which account follows which target. One row per account: unassigning keeps
-- the row (with rebalancing on, the account is liquidated to cash).
CREATE TABLE assignments (
    tenant_id           TEXT        NOT NULL,
    id                  TEXT        NOT NULL,
    -- Byte-order collation: streams are merged by account id across services.
    account_id          TEXT        COLLATE "C" NOT NULL,
    portfolio_id        TEXT,
    rebalancing_enabled BOOLEAN     NOT NULL,
    approval_mode       TEXT        NOT NULL CHECK (approval_mode IN ('auto', 'manual')),
    status              TEXT        NOT NULL CHECK (status IN ('active', 'unassigned')),
    revision            BIGINT      NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    -- Set when the target (or its weights) changed: evaluate next even in cooldown.
    target_changed_at   TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, portfolio_id) REFERENCES portfolios (tenant_id, id)
);
CREATE UNIQUE INDEX assignments_by_account ON assignments (tenant_id, account_id);
CREATE INDEX assignments_by_portfolio ON assignments (tenant_id, portfolio_id, account_id) WHERE status = 'active';
