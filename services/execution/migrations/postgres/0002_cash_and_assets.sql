-- Deposits and withdrawal requests.
CREATE TABLE cash_movements (
    tenant_id       TEXT        NOT NULL,
    id              TEXT        NOT NULL,
    account_id      TEXT        COLLATE "C" NOT NULL,
    kind            TEXT        NOT NULL CHECK (kind IN ('deposit', 'withdrawal')),
    amount          NUMERIC     NOT NULL CHECK (amount > 0),
    status          TEXT        NOT NULL CHECK (status IN ('pending', 'acknowledged', 'settled', 'canceled')),
    run_id          TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    acknowledged_at TIMESTAMPTZ,
    settled_at      TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, id)
);
CREATE INDEX cash_movements_by_account ON cash_movements (tenant_id, account_id, id);
CREATE INDEX cash_movements_pending ON cash_movements (tenant_id, account_id) WHERE status = 'pending';

-- Operator or feed overrides of asset flags (market data is shared by all tenants).
CREATE TABLE asset_overrides (
    symbol       TEXT        NOT NULL PRIMARY KEY,
    active       BOOLEAN,
    tradable     BOOLEAN,
    fractionable BOOLEAN,
    reason       TEXT        NOT NULL,
    actor        TEXT        NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
