//! The market as the service reads it: the platform's asset master and
//! uploaded quotes, over an optional live feed (the simulated market in the
//! embedded stack, none with `--market platform`). The universe is the
//! master: any symbol works once it is loaded. The feed's own universe is
//! seeded into the master at start; its live quotes, bars and volumes win for
//! the symbols it knows, and uploaded quotes price the rest.
//!
//! The master is held in memory and written through; replicas reload it from
//! the database at most every [`RELOAD_EVERY`], so an upload to one replica
//! reaches the others within that; operators' calendar days are reloaded
//! with it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use rebalancer_kit::Clock;
use rust_decimal::Decimal;

use crate::market::{Asset, Bar, MarketData, Quote};
use crate::store::{ExecutionStore, StoreError};

/// How stale the in-memory master may get before a replica reloads it.
pub const RELOAD_EVERY: StdDuration = StdDuration::from_secs(5);

#[derive(Debug, Default)]
struct Catalog {
    assets: HashMap<String, Asset>,
    quotes: HashMap<String, Quote>,
}

/// The asset master and uploaded quotes over an optional live feed. Every
/// reader of a quote (valuation, planning, the broker, block slicing) gets
/// only a usable one: of an active asset, no older than `max_age`.
#[derive(Debug)]
pub struct MasterMarketData {
    store: Arc<dyn ExecutionStore>,
    feed: Option<Arc<dyn MarketData>>,
    clock: Arc<dyn Clock>,
    max_age: Duration,
    catalog: RwLock<Catalog>,
    loaded_at: tokio::sync::Mutex<Instant>,
    /// Bumped by every write-through, so a reload that read the database
    /// before a write does not replace what the write put in memory.
    writes: AtomicU64,
}

/// Why a symbol has no usable quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuoteProblem {
    UnknownAsset,
    Inactive,
    NoQuote,
    Stale {
        quoted_at: DateTime<Utc>,
        max_age: Duration,
    },
}

impl std::fmt::Display for QuoteProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownAsset => f.write_str("not a known asset"),
            Self::Inactive => f.write_str("inactive"),
            Self::NoQuote => f.write_str("no quote"),
            Self::Stale { quoted_at, max_age } => write!(
                f,
                "stale: last quoted {}, older than {}h",
                quoted_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                max_age.num_hours()
            ),
        }
    }
}

impl MasterMarketData {
    /// Seeds the feed's universe into the master (stamped `now`) and loads it.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn open(
        store: Arc<dyn ExecutionStore>,
        feed: Option<Arc<dyn MarketData>>,
        clock: Arc<dyn Clock>,
        max_age: Duration,
    ) -> Result<Self, StoreError> {
        if let Some(feed) = &feed {
            let now = clock.now();
            let mut universe = feed.assets().await;
            for asset in &mut universe {
                asset.updated_at.get_or_insert(now);
            }
            store.seed_assets(&universe).await?;
        }
        let master = Self {
            store,
            feed,
            clock,
            max_age,
            catalog: RwLock::new(Catalog::default()),
            loaded_at: tokio::sync::Mutex::new(Instant::now()),
            writes: AtomicU64::new(0),
        };
        master.reload().await?;
        Ok(master)
    }

    /// Reads the master from the database; answers whether it replaced the
    /// one in memory (not when a write-through happened meanwhile).
    async fn reload(&self) -> Result<bool, StoreError> {
        let before = self.writes.load(Ordering::SeqCst);
        let assets = self.store.master_assets().await?;
        let quotes = self.store.master_quotes().await?;
        crate::market::load_calendar_overrides(self.store.as_ref()).await?;
        let catalog = Catalog {
            assets: assets.into_iter().map(|a| (a.symbol.clone(), a)).collect(),
            quotes: quotes.into_iter().map(|q| (q.symbol.clone(), q)).collect(),
        };
        let mut held = self.catalog.write().unwrap_or_else(PoisonError::into_inner);
        if self.writes.load(Ordering::SeqCst) != before {
            return Ok(false);
        }
        *held = catalog;
        Ok(true)
    }

    /// Reloads when another replica may have written since the last load
    /// (`force`: now).
    async fn refresh(&self, force: bool) {
        let mut loaded_at = if force {
            self.loaded_at.lock().await
        } else {
            let Ok(loaded_at) = self.loaded_at.try_lock() else {
                return;
            };
            loaded_at
        };
        if !force && loaded_at.elapsed() < RELOAD_EVERY {
            return;
        }
        match self.reload().await {
            Ok(true) => *loaded_at = Instant::now(),
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "could not reload the asset master"),
        }
    }

    /// Reloads the master at once when it does not list every one of
    /// `symbols` (another replica may have just loaded them).
    pub async fn ensure_known(&self, symbols: &[String]) {
        if !symbols.iter().all(|symbol| self.knows(symbol)) {
            self.refresh(true).await;
        }
    }

    fn read<R>(&self, f: impl FnOnce(&Catalog) -> R) -> R {
        f(&self.catalog.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Whether the master lists `symbol`.
    #[must_use]
    pub fn knows(&self, symbol: &str) -> bool {
        self.read(|catalog| catalog.assets.contains_key(symbol))
    }

    /// Creates or replaces assets; answers how many were new.
    ///
    /// # Errors
    /// Storage failures (nothing is changed then).
    pub async fn upsert_assets(&self, assets: Vec<Asset>) -> Result<usize, StoreError> {
        let created = self.store.upsert_assets(&assets).await?;
        let mut catalog = self.catalog.write().unwrap_or_else(PoisonError::into_inner);
        self.writes.fetch_add(1, Ordering::SeqCst);
        for asset in assets {
            catalog.assets.insert(asset.symbol.clone(), asset);
        }
        Ok(created)
    }

    /// Stores quotes of known assets; answers the symbols whose quote was
    /// older than the one held (those are left as they were).
    ///
    /// # Errors
    /// Storage failures (nothing is changed then).
    pub async fn upsert_quotes(&self, quotes: Vec<Quote>) -> Result<Vec<String>, StoreError> {
        let stored: HashSet<String> = self
            .store
            .upsert_quotes(&quotes)
            .await?
            .into_iter()
            .collect();
        let mut catalog = self.catalog.write().unwrap_or_else(PoisonError::into_inner);
        self.writes.fetch_add(1, Ordering::SeqCst);
        let mut older = Vec::new();
        for quote in quotes {
            if stored.contains(&quote.symbol) {
                catalog.quotes.insert(quote.symbol.clone(), quote);
            } else {
                older.push(quote.symbol);
            }
        }
        Ok(older)
    }

    /// The quote of `symbol` usable now (overrides of the asset's flags
    /// applied by the caller as `asset`), or why there is none.
    pub async fn usable_quote(
        &self,
        asset: Option<&Asset>,
        symbol: &str,
    ) -> Result<Quote, QuoteProblem> {
        match asset {
            None => return Err(QuoteProblem::UnknownAsset),
            Some(asset) if !asset.active => return Err(QuoteProblem::Inactive),
            Some(_) => {}
        }
        let quote = self.any_quote(symbol).await.ok_or(QuoteProblem::NoQuote)?;
        if self.clock.now() - quote.timestamp > self.max_age {
            return Err(QuoteProblem::Stale {
                quoted_at: quote.timestamp,
                max_age: self.max_age,
            });
        }
        Ok(quote)
    }

    /// The feed's quote, else the uploaded one, however old.
    async fn any_quote(&self, symbol: &str) -> Option<Quote> {
        if let Some(feed) = &self.feed
            && let Some(quote) = feed.quote(symbol).await
        {
            return Some(quote);
        }
        self.refresh(false).await;
        self.read(|catalog| catalog.quotes.get(symbol).cloned())
    }
}

#[tonic::async_trait]
impl MarketData for MasterMarketData {
    async fn assets(&self) -> Vec<Asset> {
        self.refresh(false).await;
        self.read(|catalog| catalog.assets.values().cloned().collect())
    }

    async fn asset(&self, symbol: &str) -> Option<Asset> {
        self.refresh(false).await;
        self.read(|catalog| catalog.assets.get(symbol).cloned())
    }

    /// Only a usable quote: of a listed, active asset, not stale.
    async fn quote(&self, symbol: &str) -> Option<Quote> {
        let asset = self.asset(symbol).await;
        self.usable_quote(asset.as_ref(), symbol).await.ok()
    }

    async fn bars(
        &self,
        symbol: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        timeframe_minutes: usize,
    ) -> Vec<Bar> {
        match &self.feed {
            Some(feed) => feed.bars(symbol, start, end, timeframe_minutes).await,
            None => Vec::new(),
        }
    }

    async fn minute_bar(&self, symbol: &str, moment: DateTime<Utc>) -> Option<Bar> {
        self.feed.as_ref()?.minute_bar(symbol, moment).await
    }

    async fn volume_profile(&self, symbol: &str) -> Option<Vec<Decimal>> {
        self.feed.as_ref()?.volume_profile(symbol).await
    }

    async fn average_daily_volume(&self, symbol: &str) -> Option<Decimal> {
        if let Some(feed) = &self.feed
            && let Some(volume) = feed.average_daily_volume(symbol).await
        {
            return Some(volume);
        }
        self.read(|catalog| catalog.assets.get(symbol)?.average_daily_volume)
    }

    fn speed(&self) -> u32 {
        self.feed.as_ref().map_or(1, |feed| feed.speed())
    }
}
