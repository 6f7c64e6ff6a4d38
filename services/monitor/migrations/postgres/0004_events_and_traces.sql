-- The event outbox: every change of the objects below is recorded by a
-- trigger in the transaction that makes it, so no code path can change one
-- without its event. `seq` (the public id) is given after commit by the
-- event sequencer, one at a time, so readers see ids in commit order with no
-- gap to fill in later.
CREATE TABLE events (
    id              BIGSERIAL   PRIMARY KEY,
    seq             BIGINT      UNIQUE,
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
    source_seq      BIGINT,
    -- NULL: the change carries no time of its own; the sequencer's clock.
    occurred_at     TIMESTAMPTZ,
    sequenced_at    TIMESTAMPTZ
);
CREATE INDEX events_by_tenant ON events (tenant_id, seq);
CREATE INDEX events_unsequenced ON events (id) WHERE seq IS NULL;
CREATE INDEX events_by_age ON events (sequenced_at);
CREATE UNIQUE INDEX events_from_source ON events (source, source_seq) WHERE source_seq IS NOT NULL;

CREATE FUNCTION record_cycle_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO events (tenant_id, event_type, object_id, account_id, status, previous_status, parent_id, detail, source, occurred_at)
        VALUES (NEW.tenant_id, 'EVENT_TYPE_CYCLE_STATE_CHANGED', NEW.id, '', 'CYCLE_STATE_' || upper(NEW.state), '', COALESCE(NEW.portfolio_id, ''), NEW.trigger_kind || CASE WHEN NEW.dry_run THEN ' dry run' ELSE '' END, 'monitor', NEW.created_at);
    ELSIF NEW.state IS DISTINCT FROM OLD.state THEN
        INSERT INTO events (tenant_id, event_type, object_id, account_id, status, previous_status, parent_id, detail, source, occurred_at)
        VALUES (NEW.tenant_id, 'EVENT_TYPE_CYCLE_STATE_CHANGED', NEW.id, '', 'CYCLE_STATE_' || upper(NEW.state), 'CYCLE_STATE_' || upper(OLD.state), COALESCE(NEW.portfolio_id, ''), CASE WHEN NEW.error <> '' THEN NEW.error ELSE NEW.trigger_kind || CASE WHEN NEW.dry_run THEN ' dry run' ELSE '' END END, 'monitor', CASE NEW.state WHEN 'running' THEN NEW.started_at ELSE NEW.completed_at END);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER cycles_events AFTER INSERT OR UPDATE ON cycles
    FOR EACH ROW EXECUTE FUNCTION record_cycle_event();

-- Flagged accounts of cycles that are not dry runs.
CREATE FUNCTION record_flag_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- A retried shard rewrites its evaluations: flag again only a change.
    IF TG_OP = 'UPDATE' AND OLD.status IS NOT DISTINCT FROM NEW.status THEN
        RETURN NULL;
    END IF;
    INSERT INTO events (tenant_id, event_type, object_id, account_id, status, previous_status, parent_id, detail, source, occurred_at)
    SELECT NEW.tenant_id, 'EVENT_TYPE_ACCOUNT_FLAGGED', NEW.cycle_id, NEW.account_id, 'EVALUATION_STATUS_' || upper(NEW.status), '', COALESCE(NEW.portfolio_id, ''), NEW.reason, 'monitor', NEW.evaluated_at FROM cycles c WHERE c.tenant_id = NEW.tenant_id AND c.id = NEW.cycle_id AND NOT c.dry_run;
    RETURN NULL;
END
$$;
CREATE TRIGGER evaluations_events AFTER INSERT OR UPDATE ON evaluations
    FOR EACH ROW WHEN (NEW.status <> 'inside_tolerance') EXECUTE FUNCTION record_flag_event();

-- The trace of the request or schedule that started a cycle (W3C
-- traceparent): its shards continue it.
ALTER TABLE cycles ADD COLUMN trace_context TEXT;
