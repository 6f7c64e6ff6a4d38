-- The FIX broker adapter (--broker fix). Broker-level data, shared by all
-- tenants like the broker account it mirrors.

-- Session state of each FIX session: sequence numbers survive restarts.
CREATE TABLE fix_sessions (
    session_key     TEXT        NOT NULL PRIMARY KEY,
    next_sender_seq INTEGER      NOT NULL,
    next_target_seq INTEGER      NOT NULL,
    created_at      TEXT NOT NULL
);

-- Every message sent, kept for the counterparty's resend requests.
CREATE TABLE fix_messages (
    session_key TEXT   NOT NULL,
    seq         INTEGER NOT NULL,
    body        BLOB  NOT NULL,
    PRIMARY KEY (session_key, seq)
);

-- Orders sent over FIX (ClOrdID = the deterministic client order id) and
-- their state as the broker's execution reports give it.
CREATE TABLE fix_orders (
    client_order_id TEXT        NOT NULL PRIMARY KEY,
    broker_order_id TEXT        NOT NULL,
    symbol          TEXT        NOT NULL,
    side            TEXT        NOT NULL,
    quantity        TEXT     NOT NULL,
    notional        TEXT,
    limit_price     TEXT,
    status          TEXT        NOT NULL,
    filled_quantity TEXT     NOT NULL,
    reason          TEXT        NOT NULL,
    sent_at         TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

-- Executions by the broker's ExecID: a repeated report books nothing.
CREATE TABLE fix_executions (
    exec_id         TEXT        NOT NULL PRIMARY KEY,
    client_order_id TEXT        NOT NULL,
    quantity        TEXT     NOT NULL,
    price           TEXT     NOT NULL,
    executed_at     TEXT NOT NULL
);
CREATE INDEX fix_executions_by_order ON fix_executions (client_order_id);

-- What the broker said that the book cannot take: a report for an order
-- never sent, a fill beyond the order's quantity. Raised, never booked.
CREATE TABLE broker_breaks (
    id              TEXT        NOT NULL PRIMARY KEY,
    kind            TEXT        NOT NULL CHECK (kind IN ('unknown_order', 'overfill')),
    client_order_id TEXT        NOT NULL,
    symbol          TEXT        NOT NULL,
    quantity        TEXT     NOT NULL,
    price           TEXT     NOT NULL,
    detail          TEXT        NOT NULL,
    raised_at       TEXT NOT NULL
);
