-- The account book: cash, positions and restrictions of each account.
CREATE TABLE accounts (
    tenant_id          TEXT        NOT NULL,
    -- Byte-order collation: streams are merged by account id across services.
    id                 TEXT        COLLATE "C" NOT NULL,
    status             TEXT        NOT NULL CHECK (status IN ('active', 'closed')),
    cash               NUMERIC     NOT NULL,
    -- Sorted, comma-separated restriction names set by the platform.
    restrictions       TEXT        NOT NULL DEFAULT '',
    revision           BIGINT      NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    last_rebalanced_at TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE positions (
    tenant_id    TEXT    NOT NULL,
    account_id   TEXT    COLLATE "C" NOT NULL,
    symbol       TEXT    NOT NULL,
    quantity     NUMERIC NOT NULL CHECK (quantity > 0),
    average_cost NUMERIC NOT NULL,
    PRIMARY KEY (tenant_id, account_id, symbol),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, id)
);

CREATE TABLE idempotency_keys (
    tenant_id   TEXT        NOT NULL,
    operation   TEXT        NOT NULL,
    key         TEXT        NOT NULL,
    fingerprint TEXT        NOT NULL,
    resource_id TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, operation, key)
);
