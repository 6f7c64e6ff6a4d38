-- The event outbox: every change of the objects below is recorded by a
-- trigger in the transaction that makes it, so no code path can change one
-- without its event. `seq` (the public id) is given after commit by the
-- event sequencer, one at a time, so readers see ids in commit order with no
-- gap to fill in later.
CREATE TABLE events (
    id              INTEGER     PRIMARY KEY AUTOINCREMENT,
    seq             INTEGER     UNIQUE,
    tenant_id       TEXT        NOT NULL,
    event_type      TEXT        NOT NULL,
    object_id       TEXT        NOT NULL,
    account_id      TEXT        NOT NULL DEFAULT '',
    status          TEXT        NOT NULL,
    previous_status TEXT        NOT NULL DEFAULT '',
    parent_id       TEXT        NOT NULL DEFAULT '',
    detail          TEXT        NOT NULL DEFAULT '',
    source          TEXT        NOT NULL,
    -- The id the event had in the service that recorded it (gathered events).
    source_seq      INTEGER,
    -- NULL: the change carries no time of its own; the sequencer's clock.
    occurred_at     TEXT,
    sequenced_at    TEXT
);
CREATE INDEX events_by_tenant ON events (tenant_id, seq);
CREATE INDEX events_unsequenced ON events (id) WHERE seq IS NULL;
CREATE INDEX events_by_age ON events (sequenced_at);
CREATE UNIQUE INDEX events_from_source ON events (source, source_seq) WHERE source_seq IS NOT NULL;

-- Where the gathering of the target's and the monitor's events stands.
CREATE TABLE event_sources (
    source   TEXT    PRIMARY KEY,
    last_seq INTEGER NOT NULL
);

CREATE TRIGGER runs_created AFTER INSERT ON runs BEGIN
    INSERT INTO events (tenant_id, event_type, object_id, account_id, status, previous_status, parent_id, detail, source, occurred_at)
    VALUES (NEW.tenant_id, 'EVENT_TYPE_RUN_CREATED', NEW.id, NEW.account_id, 'RUN_STATUS_' || upper(NEW.status), '', COALESCE(NEW.batch_id, ''), NEW.reason, 'execution', NEW.created_at);
END;
CREATE TRIGGER runs_changed AFTER UPDATE ON runs WHEN NEW.status IS NOT OLD.status BEGIN
    INSERT INTO events (tenant_id, event_type, object_id, account_id, status, previous_status, parent_id, detail, source, occurred_at)
    VALUES (NEW.tenant_id, 'EVENT_TYPE_RUN_STATUS_CHANGED', NEW.id, NEW.account_id, 'RUN_STATUS_' || upper(NEW.status), 'RUN_STATUS_' || upper(OLD.status), COALESCE(NEW.batch_id, ''), NEW.reason, 'execution', NEW.updated_at);
END;

CREATE TRIGGER batches_created AFTER INSERT ON batches BEGIN
    INSERT INTO events (tenant_id, event_type, object_id, account_id, status, previous_status, parent_id, detail, source, occurred_at)
    VALUES (NEW.tenant_id, 'EVENT_TYPE_BATCH_CREATED', NEW.id, '', 'BATCH_STATUS_' || upper(NEW.status), '', COALESCE(NEW.portfolio_id, ''), NEW.reason, 'execution', NEW.created_at);
END;
CREATE TRIGGER batches_changed AFTER UPDATE ON batches WHEN NEW.status IS NOT OLD.status BEGIN
    INSERT INTO events (tenant_id, event_type, object_id, account_id, status, previous_status, parent_id, detail, source, occurred_at)
    VALUES (NEW.tenant_id, 'EVENT_TYPE_BATCH_STATUS_CHANGED', NEW.id, '', 'BATCH_STATUS_' || upper(NEW.status), 'BATCH_STATUS_' || upper(OLD.status), COALESCE(NEW.portfolio_id, ''), NEW.reason, 'execution', CASE NEW.status WHEN 'in_progress' THEN NEW.transmitted_at WHEN 'completed' THEN NEW.completed_at ELSE NULL END);
END;

CREATE TRIGGER block_orders_created AFTER INSERT ON block_orders BEGIN
    INSERT INTO events (tenant_id, event_type, object_id, account_id, status, previous_status, parent_id, detail, source, occurred_at)
    VALUES (NEW.tenant_id, 'EVENT_TYPE_BLOCK_CREATED', NEW.id, '', 'ORDER_STATUS_' || upper(NEW.status), '', COALESCE(NEW.batch_id, ''), NEW.side || ' ' || NEW.symbol, 'execution', NEW.created_at);
END;
CREATE TRIGGER block_orders_changed AFTER UPDATE ON block_orders WHEN NEW.status IS NOT OLD.status BEGIN
    INSERT INTO events (tenant_id, event_type, object_id, account_id, status, previous_status, parent_id, detail, source, occurred_at)
    VALUES (NEW.tenant_id, 'EVENT_TYPE_BLOCK_STATUS_CHANGED', NEW.id, '', 'ORDER_STATUS_' || upper(NEW.status), 'ORDER_STATUS_' || upper(OLD.status), COALESCE(NEW.batch_id, ''), NEW.side || ' ' || NEW.symbol, 'execution', NEW.completed_at);
END;

CREATE TRIGGER cash_movements_created AFTER INSERT ON cash_movements BEGIN
    INSERT INTO events (tenant_id, event_type, object_id, account_id, status, previous_status, parent_id, detail, source, occurred_at)
    VALUES (NEW.tenant_id, 'EVENT_TYPE_CASH_MOVEMENT_CREATED', NEW.id, NEW.account_id, 'CASH_MOVEMENT_STATUS_' || upper(NEW.status), '', COALESCE(NEW.run_id, ''), NEW.kind || ' ' || NEW.amount, 'execution', NEW.created_at);
END;
CREATE TRIGGER cash_movements_changed AFTER UPDATE ON cash_movements WHEN NEW.status IS NOT OLD.status BEGIN
    INSERT INTO events (tenant_id, event_type, object_id, account_id, status, previous_status, parent_id, detail, source, occurred_at)
    VALUES (NEW.tenant_id, 'EVENT_TYPE_CASH_MOVEMENT_STATUS_CHANGED', NEW.id, NEW.account_id, 'CASH_MOVEMENT_STATUS_' || upper(NEW.status), 'CASH_MOVEMENT_STATUS_' || upper(OLD.status), COALESCE(NEW.run_id, ''), NEW.kind || ' ' || NEW.amount, 'execution', CASE NEW.status WHEN 'acknowledged' THEN NEW.acknowledged_at WHEN 'settled' THEN NEW.settled_at ELSE NULL END);
END;


-- The trace of the request that created a run, and of the transmission
-- that made a block (W3C traceparent): the worker continues them.
ALTER TABLE runs ADD COLUMN trace_context TEXT;
ALTER TABLE block_orders ADD COLUMN trace_context TEXT;
