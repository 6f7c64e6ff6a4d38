-- Reconciliation with the broker (ReconcileAccounts): each statement
-- compared with the book, and the differences found, kept until a later
-- statement agrees. The book itself is never changed to match.
CREATE TABLE reconciliations (
    tenant_id        TEXT        NOT NULL,
    id               TEXT        NOT NULL,
    as_of            TIMESTAMPTZ NOT NULL,
    source           TEXT        NOT NULL,
    lines            BIGINT      NOT NULL,
    accounts_checked BIGINT      NOT NULL,
    breaks_raised    BIGINT      NOT NULL,
    breaks_cleared   BIGINT      NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE reconciliation_breaks (
    tenant_id         TEXT        NOT NULL,
    id                TEXT        NOT NULL,
    -- The statement that raised it, and the last one that found it again.
    reconciliation_id TEXT        NOT NULL,
    last_seen_by      TEXT        NOT NULL,
    account_id        TEXT        NOT NULL,
    -- Empty for cash.
    symbol            TEXT        NOT NULL,
    -- NULL when the book has no such account.
    book_quantity     NUMERIC,
    broker_quantity   NUMERIC     NOT NULL,
    detail            TEXT        NOT NULL,
    raised_at         TIMESTAMPTZ NOT NULL,
    cleared_at        TIMESTAMPTZ,
    cleared_by        TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX reconciliation_breaks_by_account ON reconciliation_breaks (tenant_id, account_id, cleared_at);
