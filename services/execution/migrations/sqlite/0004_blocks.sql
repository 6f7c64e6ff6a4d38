-- Rebalance requests over many accounts (the Rebalance Center's history).
CREATE TABLE batches (
    tenant_id           TEXT        NOT NULL,
    id                  TEXT        NOT NULL,
    portfolio_id        TEXT,
    kind                TEXT        NOT NULL,
    status              TEXT        NOT NULL CHECK (status IN ('proposed', 'in_progress', 'completed', 'canceled')),
    algorithm_json      TEXT        NOT NULL,
    initiated_from      TEXT        NOT NULL,
    created_by          TEXT        NOT NULL,
    reason              TEXT        NOT NULL,
    account_errors_json TEXT        NOT NULL,
    revision            INTEGER      NOT NULL,
    created_at          TEXT        NOT NULL,
    transmitted_at      TEXT       ,
    completed_at        TEXT       ,
    PRIMARY KEY (tenant_id, id)
);

-- Orders of one symbol and side across the accounts of a transmission,
-- worked as one by an algorithm.
CREATE TABLE block_orders (
    tenant_id           TEXT        NOT NULL,
    id                  TEXT        NOT NULL,
    transmission_id     TEXT        NOT NULL,
    batch_id            TEXT,
    symbol              TEXT        NOT NULL,
    side                TEXT        NOT NULL CHECK (side IN ('buy', 'sell')),
    whole_shares        BOOLEAN     NOT NULL,
    -- Worked in dollars (fractional notional orders) rather than shares.
    notional            BOOLEAN     NOT NULL,
    algorithm_json      TEXT        NOT NULL,
    status              TEXT        NOT NULL,
    quantity            TEXT        NOT NULL,
    filled_quantity     TEXT        NOT NULL,
    filled_notional     TEXT        NOT NULL,
    account_order_count INTEGER      NOT NULL,
    arrival_price       TEXT   ,
    window_start        TEXT       ,
    window_end          TEXT       ,
    reason              TEXT        NOT NULL,
    created_at          TEXT        NOT NULL,
    completed_at        TEXT       ,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX block_orders_by_transmission ON block_orders (tenant_id, transmission_id);
CREATE INDEX block_orders_by_batch ON block_orders (tenant_id, batch_id) WHERE batch_id IS NOT NULL;
CREATE INDEX block_orders_open ON block_orders (status) WHERE status IN ('new', 'submitted', 'partially_filled');

-- Slices: durable timers. Workers claim due ones with a lease, so a crashed
-- worker's slices are taken over once its lease expires.
CREATE TABLE slices (
    tenant_id      TEXT        NOT NULL,
    id             TEXT        NOT NULL,
    block_order_id TEXT        NOT NULL,
    sequence       INTEGER     NOT NULL,
    due_at         TEXT        NOT NULL,
    status         TEXT        NOT NULL CHECK (status IN ('pending', 'claimed', 'done', 'canceled')),
    lease_owner    TEXT,
    lease_until    TEXT       ,
    attempts       INTEGER     NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, block_order_id, sequence)
);
CREATE INDEX slices_due ON slices (due_at) WHERE status IN ('pending', 'claimed');

-- One slice sent to the broker; the client order id is deterministic.
CREATE TABLE child_orders (
    tenant_id          TEXT        NOT NULL,
    id                 TEXT        NOT NULL,
    block_order_id     TEXT        NOT NULL,
    slice_id           TEXT        NOT NULL,
    client_order_id    TEXT        NOT NULL,
    broker_order_id    TEXT        NOT NULL,
    quantity           TEXT        NOT NULL,
    limit_price        TEXT   ,
    status             TEXT        NOT NULL,
    filled_quantity    TEXT        NOT NULL,
    average_fill_price TEXT   ,
    reason             TEXT        NOT NULL,
    due_at             TEXT        NOT NULL,
    submitted_at       TEXT        NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX child_orders_by_client_id ON child_orders (client_order_id);
CREATE INDEX child_orders_by_block ON child_orders (tenant_id, block_order_id, id);

CREATE TABLE fills (
    tenant_id      TEXT        NOT NULL,
    id             TEXT        NOT NULL,
    child_order_id TEXT        NOT NULL,
    block_order_id TEXT        NOT NULL,
    quantity       TEXT        NOT NULL,
    price          TEXT        NOT NULL,
    executed_at    TEXT        NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX fills_by_block ON fills (tenant_id, block_order_id, id);

-- The share of each fill given to each account order.
CREATE TABLE allocations (
    tenant_id  TEXT    NOT NULL,
    fill_id    TEXT    NOT NULL,
    order_id   TEXT    NOT NULL,
    account_id TEXT    NOT NULL,
    symbol     TEXT    NOT NULL,
    side       TEXT    NOT NULL,
    quantity   TEXT    NOT NULL,
    price      TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, fill_id, order_id)
);
CREATE INDEX allocations_by_order ON allocations (tenant_id, order_id);

-- The paper broker's own book: what a broker keeps. Resubmitting a client
-- order id returns the order already made.
CREATE TABLE paper_orders (
    client_order_id TEXT        NOT NULL PRIMARY KEY,
    broker_order_id TEXT        NOT NULL,
    symbol          TEXT        NOT NULL,
    side            TEXT        NOT NULL,
    quantity        TEXT        NOT NULL,
    limit_price     TEXT   ,
    status          TEXT        NOT NULL,
    filled_quantity TEXT        NOT NULL,
    reason          TEXT        NOT NULL,
    submitted_at    TEXT        NOT NULL
);

CREATE TABLE paper_fills (
    id              TEXT        NOT NULL PRIMARY KEY,
    client_order_id TEXT        NOT NULL,
    quantity        TEXT        NOT NULL,
    price           TEXT        NOT NULL,
    executed_at     TEXT        NOT NULL
);
CREATE INDEX paper_fills_by_order ON paper_fills (client_order_id);
