//! The replayable event stream. Each service's migrations add an outbox
//! table, `events`, and triggers that record every change of its objects in
//! the transaction that makes it. Here, once for every service:
//!
//! - [`EventLog`]: the outbox of one database, with its sequencer (ids in
//!   commit order), pruning after the retention, and a wake-up for watchers;
//! - [`watch`]: a tenant's events after an id, then live ones;
//! - [`export`]: every tenant's events after an id, for the service that
//!   gathers them;
//! - [`Gatherer`]: copies another service's events into this outbox, so one
//!   stream carries the whole tenant (the execution service gathers the
//!   target's and the monitor's).
//!
//! Ids are numbers, sent as 20-digit decimal text so they sort as text too.

mod metrics;
mod store;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rebalancer_domain::Violations;
use rebalancer_proto::events as pb;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use store::{EventQuery, EventRecord, EventStore, PoolUsage, Sequenced, SqlEvents};

use crate::Clock;
use crate::error::{ServiceError, StoreError};

/// How long events are kept by default.
pub const DEFAULT_RETENTION_DAYS: u32 = 7;

/// How often the sequencer looks for new events (real time).
const SEQUENCE_EVERY: Duration = Duration::from_millis(200);

/// How often the gatherer asks its sources (real time).
const GATHER_EVERY: Duration = Duration::from_millis(500);

/// Events sent to a watcher per read.
const WATCH_PAGE: i64 = 500;

/// Largest export page.
const MAX_EXPORT_PAGE: i32 = 10_000;

/// The outbox of one service's database.
#[derive(Debug, Clone)]
pub struct EventLog {
    store: Arc<dyn EventStore>,
    clock: Arc<dyn Clock>,
    /// The database's name in metrics ("target", "monitor", "execution").
    database: &'static str,
    /// Woken when the sequencer has given ids.
    sequenced: Arc<Notify>,
}

impl EventLog {
    #[must_use]
    pub fn new(store: Arc<dyn EventStore>, clock: Arc<dyn Clock>, database: &'static str) -> Self {
        Self {
            store,
            clock,
            database,
            sequenced: Arc::new(Notify::new()),
        }
    }

    #[must_use]
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// Gives ids to the events committed since the last pass (and wakes
    /// watchers when there were any). Returns how many.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn sequence(&self) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let done = self.store.sequence_events(self.clock.now()).await?;
            if done.is_empty() {
                break;
            }
            total += done.len() as u64;
            metrics::recorded(&done);
        }
        if total > 0 {
            self.sequenced.notify_waiters();
        }
        Ok(total)
    }

    /// Deletes events older than `retention` on the log's clock.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn prune(&self, retention: chrono::Duration) -> Result<u64, StoreError> {
        self.store.prune_events(self.clock.now() - retention).await
    }

    /// Sequences every 200 ms and prunes every ten minutes until `shutdown`.
    /// Every replica may run it: sequencing passes take turns.
    pub async fn run(self, retention: chrono::Duration, shutdown: CancellationToken) {
        let mut failing = false;
        let mut ticks: u64 = 0;
        loop {
            let pass = async {
                self.sequence().await?;
                if ticks.is_multiple_of(3_000) {
                    let pruned = self.prune(retention).await?;
                    if pruned > 0 {
                        tracing::info!(pruned, "pruned events past their retention");
                    }
                }
                Ok::<_, StoreError>(())
            };
            match pass.await {
                Ok(()) => failing = false,
                Err(error) => {
                    // Logged once per outage, not every 200 ms.
                    if !failing {
                        tracing::warn!(error = %error, "event sequencing failed; retrying");
                    }
                    failing = true;
                }
            }
            if ticks.is_multiple_of(10) {
                metrics::pool(self.database, self.store.pool_usage());
            }
            ticks += 1;
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(SEQUENCE_EVERY) => {}
            }
        }
    }

    /// Refuses a start before what is kept: the caller would miss events.
    async fn check_kept(&self, after: i64) -> Result<(), ServiceError> {
        if after == 0 {
            return Ok(());
        }
        match self
            .store
            .oldest_event()
            .await
            .map_err(ServiceError::Store)?
        {
            Some(oldest) if after < oldest - 1 => Err(ServiceError::FailedPrecondition(format!(
                "events after {} are no longer kept (retention); the oldest kept is {}: \
                 resume from an id at or after {}",
                event_id(after),
                event_id(oldest),
                event_id(oldest - 1)
            ))),
            _ => Ok(()),
        }
    }
}

/// An id as sent: 20 digits.
#[must_use]
pub fn event_id(seq: i64) -> String {
    format!("{seq:020}")
}

/// An id as received (`field` names it in the refusal); empty is 0.
///
/// # Errors
/// `Invalid` when it is not a number of at most 20 digits.
pub fn parse_event_id(field: &str, id: &str) -> Result<i64, ServiceError> {
    if id.is_empty() {
        return Ok(0);
    }
    if id.len() > 20 || !id.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(Violations::one(field, "must be an event id: up to 20 decimal digits").into());
    }
    id.parse::<i64>()
        .map_err(|_| Violations::one(field, "is beyond the largest event id").into())
}

/// An event on the wire.
#[must_use]
pub fn to_wire(event: &EventRecord) -> pb::Event {
    pb::Event {
        id: event_id(event.seq),
        tenant_id: event.tenant_id.clone(),
        r#type: pb::EventType::from_str_name(&event.event_type)
            .unwrap_or(pb::EventType::Unspecified)
            .into(),
        occurred_at: Some(crate::wire::timestamp(event.occurred_at)),
        object_id: event.object_id.clone(),
        account_id: event.account_id.clone(),
        status: event.status.clone(),
        previous_status: event.previous_status.clone(),
        parent_id: event.parent_id.clone(),
        detail: event.detail.clone(),
        source: event.source.clone(),
    }
}

/// An event from another service's export, `None` when it is not one.
#[must_use]
pub fn from_wire(event: &pb::Event) -> Option<EventRecord> {
    Some(EventRecord {
        seq: event.id.parse().ok()?,
        tenant_id: event.tenant_id.clone(),
        event_type: event.r#type().as_str_name().to_owned(),
        object_id: event.object_id.clone(),
        account_id: event.account_id.clone(),
        status: event.status.clone(),
        previous_status: event.previous_status.clone(),
        parent_id: event.parent_id.clone(),
        detail: event.detail.clone(),
        source: event.source.clone(),
        occurred_at: event
            .occurred_at
            .as_ref()
            .and_then(crate::wire::datetime)
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
    })
}

/// The query of a `WatchEvents` request for `tenant`.
///
/// # Errors
/// `Invalid` for a malformed id or an unknown type.
pub fn watch_query(
    tenant: &str,
    request: &pb::WatchEventsRequest,
) -> Result<EventQuery, ServiceError> {
    let mut violations = Violations::new();
    let after = match parse_event_id("after_id", &request.after_id) {
        Ok(after) => after,
        Err(ServiceError::Invalid(found)) => {
            for violation in found {
                violations.add(violation.field, violation.description);
            }
            0
        }
        Err(error) => return Err(error),
    };
    let mut types = Vec::new();
    for (index, value) in request.types.iter().enumerate() {
        match pb::EventType::try_from(*value) {
            Ok(pb::EventType::Unspecified) | Err(_) => {
                violations.add(format!("types[{index}]"), "is not an event type");
            }
            Ok(event_type) => types.push(event_type.as_str_name().to_owned()),
        }
    }
    Ok(violations.into_result(EventQuery {
        tenant: Some(tenant.to_owned()),
        after,
        types,
        limit: WATCH_PAGE,
    })?)
}

/// The events of `query` (a tenant's, after an id), then new ones as they
/// are sequenced, into `sender` until the receiver hangs up.
///
/// # Errors
/// `FailedPrecondition` when the start is older than what is kept.
pub async fn watch(
    log: EventLog,
    mut query: EventQuery,
) -> Result<tokio::sync::mpsc::Receiver<Result<pb::WatchEventsResponse, tonic::Status>>, ServiceError>
{
    log.check_kept(query.after).await?;
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            // Registered before reading, so a pass that ends between the
            // read and the wait still wakes this watcher.
            let sequenced = log.sequenced.notified();
            // Sequencing here too keeps a watcher current where no
            // background sequencer runs (a replica without workers).
            let read = async {
                log.sequence().await?;
                log.store.read_events(&query).await
            };
            let events = match read.await {
                Ok(events) => events,
                Err(error) => {
                    tracing::warn!(error = %error, "cannot read events for a watcher");
                    let _ = sender
                        .send(Err(tonic::Status::from(ServiceError::Store(error))))
                        .await;
                    return;
                }
            };
            let full = i64::try_from(events.len()).unwrap_or(i64::MAX) >= query.limit;
            for event in &events {
                query.after = event.seq;
                let message = pb::WatchEventsResponse {
                    event: Some(to_wire(event)),
                };
                if sender.send(Ok(message)).await.is_err() {
                    return;
                }
            }
            if full {
                continue;
            }
            // New events in this process wake the watcher at once; other
            // replicas' are found by the periodic read.
            tokio::select! {
                () = sender.closed() => return,
                () = sequenced => {}
                () = tokio::time::sleep(GATHER_EVERY) => {}
            }
        }
    });
    Ok(receiver)
}

/// One page of every tenant's events after `after_id` (those just committed
/// included), and the oldest id kept, for another service's [`Gatherer`].
///
/// # Errors
/// `Invalid` for a malformed id or page size.
pub async fn export(
    log: &EventLog,
    after_id: &str,
    page_size: i32,
) -> Result<(Vec<pb::Event>, String), ServiceError> {
    let after = parse_event_id("after_id", after_id)?;
    if !(0..=MAX_EXPORT_PAGE).contains(&page_size) {
        return Err(Violations::one("page_size", "must be between 0 and 10000").into());
    }
    let limit = if page_size == 0 { 1_000 } else { page_size };
    log.sequence().await.map_err(ServiceError::Store)?;
    let events = log
        .store
        .read_events(&EventQuery {
            tenant: None,
            after,
            types: Vec::new(),
            limit: i64::from(limit),
        })
        .await
        .map_err(ServiceError::Store)?;
    let oldest = log
        .store
        .oldest_event()
        .await
        .map_err(ServiceError::Store)?
        .map(event_id)
        .unwrap_or_default();
    Ok((events.iter().map(to_wire).collect(), oldest))
}

/// Another service's events, as its export answers them.
#[tonic::async_trait]
pub trait EventSource: Send + Sync + std::fmt::Debug {
    /// The source's name, recorded on its events ("target", "monitor").
    fn name(&self) -> &'static str;

    /// One page of its events after `after_id`, and the oldest id it keeps.
    async fn export(
        &self,
        after_id: String,
        page_size: i32,
    ) -> Result<(Vec<pb::Event>, String), tonic::Status>;
}

/// Copies other services' events into a log, each at its own position.
#[derive(Debug)]
pub struct Gatherer {
    log: EventLog,
    sources: Vec<Arc<dyn EventSource>>,
}

impl Gatherer {
    #[must_use]
    pub fn new(log: EventLog, sources: Vec<Arc<dyn EventSource>>) -> Self {
        Self { log, sources }
    }

    /// Takes what each source has after its position, page by page. Returns
    /// how many events were taken.
    ///
    /// # Errors
    /// The first source or database failure (the other sources are still
    /// tried).
    pub async fn gather(&self) -> anyhow::Result<u64> {
        let mut taken = 0;
        let mut first_error = None;
        for source in &self.sources {
            match self.gather_from(source.as_ref()).await {
                Ok(count) => taken += count,
                Err(error) => {
                    first_error.get_or_insert(error.context(format!("from {}", source.name())));
                }
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(taken),
        }
    }

    async fn gather_from(&self, source: &dyn EventSource) -> anyhow::Result<u64> {
        let mut taken = 0;
        loop {
            let position = self.log.store.source_position(source.name()).await?;
            let (events, oldest) = source.export(event_id(position), 1_000).await?;
            let oldest: i64 = oldest.parse().unwrap_or(0);
            if position > 0 && oldest > position + 1 {
                tracing::error!(
                    source = source.name(),
                    position,
                    oldest,
                    "events of this source were pruned before they were gathered; \
                     the stream misses them"
                );
            }
            let Some(last) = events.last() else {
                return Ok(taken);
            };
            let through = last
                .id
                .parse::<i64>()
                .map_err(|_| anyhow::anyhow!("{} sent an event id {:?}", source.name(), last.id))?;
            let records: Vec<EventRecord> = events.iter().filter_map(from_wire).collect();
            self.log
                .store
                .gather_events(source.name(), &records, through)
                .await?;
            taken += records.len() as u64;
        }
    }

    /// Gathers every 500 ms until `shutdown`; an unreachable source is
    /// logged once per outage.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut failing = false;
        loop {
            match self.gather().await {
                Ok(_) => failing = false,
                Err(error) => {
                    if !failing {
                        tracing::warn!(
                            error = format!("{error:#}"),
                            "gathering events failed; retrying"
                        );
                    }
                    failing = true;
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(GATHER_EVERY) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests;
