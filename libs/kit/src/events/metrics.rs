//! What the event log's pass records: `rebalancer.events` (counter, every
//! change this service recorded, by `type` and `status`: runs opened and
//! ended by status, blocks by state, cash movements, cycles, flags) and,
//! every two seconds, `rebalancer.db.pool.connections` (gauge, by
//! `database` and `state` = `used` | `idle`).

use std::sync::OnceLock;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge};

use super::store::{PoolUsage, Sequenced};

struct Instruments {
    events: Counter<u64>,
    connections: Gauge<u64>,
}

fn instruments() -> &'static Instruments {
    static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();
    INSTRUMENTS.get_or_init(|| {
        let meter = crate::metrics::meter();
        Instruments {
            events: meter
                .u64_counter("rebalancer.events")
                .with_description(
                    "Changes recorded by this service, by event type and the status reached",
                )
                .build(),
            connections: meter
                .u64_gauge("rebalancer.db.pool.connections")
                .with_description("Connections of the service's database pool, by state")
                .build(),
        }
    })
}

pub(super) fn recorded(events: &[Sequenced]) {
    let instruments = instruments();
    for event in events.iter().filter(|event| !event.gathered) {
        instruments.events.add(
            1,
            &[
                KeyValue::new("type", event.event_type.clone()),
                KeyValue::new("status", event.status.clone()),
            ],
        );
    }
}

pub(super) fn pool(database: &'static str, usage: PoolUsage) {
    let instruments = instruments();
    let used = usage.open.saturating_sub(usage.idle);
    for (state, value) in [("used", used), ("idle", usage.idle)] {
        instruments.connections.record(
            u64::from(value),
            &[
                KeyValue::new("database", database),
                KeyValue::new("state", state),
            ],
        );
    }
}
