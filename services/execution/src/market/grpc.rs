//! `rebalancer.execution.v1.MarketDataService`.

use std::collections::HashSet;

use chrono::NaiveDate;
use rebalancer_domain::calendar_days::DaySource;
use rebalancer_domain::{Symbol, Violations, calendar};
use rebalancer_kit::RequestContext;
use rebalancer_kit::error::{invalid_argument, invalid_field};
use rebalancer_kit::page::{decode_token, finish_page, page_size};
use rebalancer_kit::wire::{datetime, decimal_text, timestamp};
use rebalancer_proto::execution as pb;
use rebalancer_proto::execution::market_data_service_server::MarketDataService;
use rust_decimal::Decimal;
use tonic::{Request, Response, Status};

use crate::grpc::ExecutionApi;
use crate::market::convert::{asset_to_wire, bar_to_wire, calendar_day_to_wire, quote_to_wire};
use crate::market::{AssetFlags, parse};

/// Longest calendar range one request may ask for.
const MAX_CALENDAR_DAYS: i64 = 3660;
/// Most quotes one request may ask for.
const MAX_SYMBOLS: usize = 1000;

fn symbol(field: &str, text: &str) -> Result<String, Status> {
    Symbol::parse(text)
        .map(|symbol| symbol.to_string())
        .map_err(|error| invalid_field(field, error.to_string()))
}

fn symbols(field: &str, texts: &[String]) -> Result<Vec<String>, Status> {
    if texts.len() > MAX_SYMBOLS {
        return Err(invalid_field(
            field,
            format!("at most {MAX_SYMBOLS} symbols per request"),
        ));
    }
    texts
        .iter()
        .enumerate()
        .map(|(index, text)| symbol(&format!("{field}[{index}]"), text))
        .collect()
}

fn date(field: &str, text: &str) -> Result<NaiveDate, Status> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| invalid_field(field, "must be a date as YYYY-MM-DD"))
}

fn upload_size(violations: &mut Violations, field: &str, count: usize) {
    if count == 0 {
        violations.add(field, "at least one is required");
    } else if count > parse::MAX_UPLOAD {
        violations.add(field, format!("at most {} per call", parse::MAX_UPLOAD));
    }
}

/// The 24/7 calendar of crypto: every day, 00:00 to 24:00 UTC.
fn crypto_days(start: NaiveDate, end: NaiveDate) -> Vec<pb::TradingDay> {
    start
        .iter_days()
        .take_while(|day| *day <= end)
        .filter_map(|day| {
            let open = day.and_hms_opt(0, 0, 0)?.and_utc();
            Some(pb::TradingDay {
                date: day.to_string(),
                open: Some(timestamp(open)),
                close: Some(timestamp(open + chrono::Duration::days(1))),
                early_close: false,
                name: String::new(),
            })
        })
        .collect()
}

#[tonic::async_trait]
impl MarketDataService for ExecutionApi {
    async fn get_asset(
        &self,
        request: Request<pb::GetAssetRequest>,
    ) -> Result<Response<pb::GetAssetResponse>, Status> {
        RequestContext::of(&request)?;
        let symbol = symbol("symbol", &request.get_ref().symbol)?;
        let asset = self
            .execution
            .asset(&symbol)
            .await?
            .ok_or_else(|| Status::not_found(format!("asset {symbol} not found")))?;
        Ok(Response::new(pb::GetAssetResponse {
            asset: Some(asset_to_wire(&asset)),
        }))
    }

    async fn list_assets(
        &self,
        request: Request<pb::ListAssetsRequest>,
    ) -> Result<Response<pb::ListAssetsResponse>, Status> {
        RequestContext::of(&request)?;
        let message = request.into_inner();
        let limit = page_size(message.page_size)?;
        let after = decode_token(&message.page_token)?;
        let wanted = symbols("symbols", &message.symbols)?;
        let mut assets = self.execution.assets().await?;
        let mut missing_symbols = Vec::new();
        if !wanted.is_empty() {
            missing_symbols = wanted
                .iter()
                .filter(|symbol| {
                    assets
                        .binary_search_by(|a| a.symbol.as_str().cmp(symbol))
                        .is_err()
                })
                .cloned()
                .collect();
            assets.retain(|asset| wanted.contains(&asset.symbol));
        }
        if message.tradable_only {
            assets.retain(|asset| asset.active && asset.tradable);
        }
        if let Some(after) = after {
            assets.retain(|asset| asset.symbol > after);
        }
        assets.truncate(limit as usize + 1);
        let (assets, next_page_token) = finish_page(assets, limit, |asset| asset.symbol.clone());
        Ok(Response::new(pb::ListAssetsResponse {
            assets: assets.iter().map(asset_to_wire).collect(),
            next_page_token,
            missing_symbols,
        }))
    }

    async fn update_asset(
        &self,
        request: Request<pb::UpdateAssetRequest>,
    ) -> Result<Response<pb::UpdateAssetResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let symbol = symbol("symbol", &message.symbol)?;
        let flags = AssetFlags {
            active: message.active,
            tradable: message.tradable,
            fractionable: message.fractionable,
        };
        if flags.active.is_none() && flags.tradable.is_none() && flags.fractionable.is_none() {
            return Err(invalid_field(
                "active",
                "set at least one of active, tradable, fractionable",
            ));
        }
        let asset = self
            .execution
            .update_asset(&context, &symbol, flags, &message.reason)
            .await?;
        Ok(Response::new(pb::UpdateAssetResponse {
            asset: Some(asset_to_wire(&asset)),
        }))
    }

    async fn get_quotes(
        &self,
        request: Request<pb::GetQuotesRequest>,
    ) -> Result<Response<pb::GetQuotesResponse>, Status> {
        RequestContext::of(&request)?;
        let wanted = symbols("symbols", &request.get_ref().symbols)?;
        if wanted.is_empty() {
            return Err(invalid_field("symbols", "at least one symbol is required"));
        }
        let (quotes, missing) = self.execution.quotes(&wanted).await?;
        let missing_symbols = missing.iter().map(|(symbol, _)| symbol.clone()).collect();
        let missing = missing
            .into_iter()
            .map(|(symbol, problem)| pb::MissingQuote {
                symbol,
                reason: problem.to_string(),
            })
            .collect();
        Ok(Response::new(pb::GetQuotesResponse {
            missing,
            quotes: quotes.iter().map(quote_to_wire).collect(),
            missing_symbols,
        }))
    }

    async fn get_bars(
        &self,
        request: Request<pb::GetBarsRequest>,
    ) -> Result<Response<pb::GetBarsResponse>, Status> {
        RequestContext::of(&request)?;
        let message = request.into_inner();
        let symbol = symbol("symbol", &message.symbol)?;
        let start = message
            .start
            .as_ref()
            .and_then(datetime)
            .ok_or_else(|| invalid_field("start", "is required"))?;
        let end = message
            .end
            .as_ref()
            .and_then(datetime)
            .ok_or_else(|| invalid_field("end", "is required"))?;
        if end <= start {
            return Err(invalid_field("end", "must be after start"));
        }
        if (end - start).num_days() > 31 {
            return Err(invalid_field("end", "at most 31 days of bars per request"));
        }
        let timeframe = match message.timeframe_minutes {
            0 => 1,
            n if (1..=390).contains(&n) => usize::try_from(n).unwrap_or(1),
            _ => {
                return Err(invalid_field(
                    "timeframe_minutes",
                    "must be between 1 and 390",
                ));
            }
        };
        let bars = self
            .execution
            .market()
            .bars(&symbol, start, end, timeframe)
            .await;
        Ok(Response::new(pb::GetBarsResponse {
            bars: bars.iter().map(bar_to_wire).collect(),
        }))
    }

    async fn get_volume_profile(
        &self,
        request: Request<pb::GetVolumeProfileRequest>,
    ) -> Result<Response<pb::GetVolumeProfileResponse>, Status> {
        RequestContext::of(&request)?;
        let message = request.into_inner();
        let symbol = symbol("symbol", &message.symbol)?;
        let bin_minutes = match message.bin_minutes {
            0 => 5,
            n if (1..=390).contains(&n) => usize::try_from(n).unwrap_or(5),
            _ => return Err(invalid_field("bin_minutes", "must be between 1 and 390")),
        };
        let market = self.execution.market();
        let profile = market
            .volume_profile(&symbol)
            .await
            .ok_or_else(|| Status::not_found(format!("asset {symbol} not found")))?;
        let bins = profile
            .chunks(bin_minutes)
            .enumerate()
            .map(|(index, chunk)| {
                let start = index * bin_minutes;
                pb::VolumeBin {
                    start_minute: i32::try_from(start).unwrap_or(i32::MAX),
                    end_minute: i32::try_from(start + chunk.len()).unwrap_or(i32::MAX),
                    fraction: decimal_text(chunk.iter().sum::<Decimal>()),
                }
            })
            .collect();
        Ok(Response::new(pb::GetVolumeProfileResponse {
            symbol: symbol.clone(),
            bins,
            average_daily_volume: market
                .average_daily_volume(&symbol)
                .await
                .map(decimal_text)
                .unwrap_or_default(),
        }))
    }

    async fn get_calendar(
        &self,
        request: Request<pb::GetCalendarRequest>,
    ) -> Result<Response<pb::GetCalendarResponse>, Status> {
        RequestContext::of(&request)?;
        let message = request.into_inner();
        let start = date("start_date", &message.start_date)?;
        let end = date("end_date", &message.end_date)?;
        if end < start {
            return Err(invalid_field("end_date", "must not be before start_date"));
        }
        if (end - start).num_days() > MAX_CALENDAR_DAYS {
            return Err(invalid_field("end_date", "at most ten years per request"));
        }
        if message.calendar.eq_ignore_ascii_case("CRYPTO") {
            return Ok(Response::new(pb::GetCalendarResponse {
                days: crypto_days(start, end),
            }));
        }
        let mut violations = Violations::new();
        parse::calendar_name(&mut violations, "calendar", &message.calendar);
        if !violations.is_empty() {
            return Err(invalid_argument(&violations));
        }
        self.execution.refresh_calendar().await?;
        let days = calendar::sessions_between(start, end)
            .into_iter()
            .map(|session| pb::TradingDay {
                date: session.date.to_string(),
                open: Some(timestamp(session.open)),
                close: Some(timestamp(session.close)),
                early_close: session.early_close,
                name: calendar::session_note(session.date).unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(pb::GetCalendarResponse { days }))
    }

    async fn upsert_assets(
        &self,
        request: Request<pb::UpsertAssetsRequest>,
    ) -> Result<Response<pb::UpsertAssetsResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let now = self.execution.clock().now();
        let mut violations = Violations::new();
        upload_size(&mut violations, "assets", message.assets.len());
        let mut seen = HashSet::new();
        let mut assets = Vec::with_capacity(message.assets.len());
        for (index, wire) in message.assets.iter().enumerate() {
            let prefix = format!("assets[{index}]");
            let asset = parse::asset(&mut violations, &prefix, wire, now);
            if !asset.symbol.is_empty() && !seen.insert(asset.symbol.clone()) {
                violations.add(
                    format!("{prefix}.symbol"),
                    format!("{} is listed twice", asset.symbol),
                );
            }
            assets.push(asset);
        }
        if !violations.is_empty() {
            return Err(invalid_argument(&violations));
        }
        let done = self.execution.upsert_assets(&context, assets).await?;
        Ok(Response::new(pb::UpsertAssetsResponse {
            created: i32::try_from(done.created).unwrap_or(i32::MAX),
            updated: i32::try_from(done.updated).unwrap_or(i32::MAX),
        }))
    }

    async fn upsert_quotes(
        &self,
        request: Request<pb::UpsertQuotesRequest>,
    ) -> Result<Response<pb::UpsertQuotesResponse>, Status> {
        RequestContext::of(&request)?;
        let message = request.into_inner();
        let now = self.execution.clock().now();
        let mut violations = Violations::new();
        upload_size(&mut violations, "quotes", message.quotes.len());
        let named: Vec<String> = message
            .quotes
            .iter()
            .filter_map(|quote| Symbol::parse(&quote.symbol).ok())
            .map(|symbol| symbol.to_string())
            .collect();
        self.execution.ensure_assets_known(&named).await;
        let mut seen = HashSet::new();
        let mut quotes = Vec::with_capacity(message.quotes.len());
        for (index, wire) in message.quotes.iter().enumerate() {
            let prefix = format!("quotes[{index}]");
            let quote = parse::quote(&mut violations, &prefix, wire, now, |symbol| {
                self.execution.knows_asset(symbol)
            });
            if !quote.symbol.is_empty() && !seen.insert(quote.symbol.clone()) {
                violations.add(
                    format!("{prefix}.symbol"),
                    format!("{} is quoted twice", quote.symbol),
                );
            }
            quotes.push(quote);
        }
        if !violations.is_empty() {
            return Err(invalid_argument(&violations));
        }
        let count = quotes.len();
        let ignored_older = self.execution.upsert_quotes(quotes).await?;
        Ok(Response::new(pb::UpsertQuotesResponse {
            stored: i32::try_from(count - ignored_older.len()).unwrap_or(i32::MAX),
            ignored_older,
        }))
    }

    async fn upsert_calendar_days(
        &self,
        request: Request<pb::UpsertCalendarDaysRequest>,
    ) -> Result<Response<pb::UpsertCalendarDaysResponse>, Status> {
        let context = RequestContext::of(&request)?;
        let message = request.into_inner();
        let mut violations = Violations::new();
        if message.days.is_empty() {
            violations.add("days", "at least one day is required");
        } else if message.days.len() > parse::MAX_CALENDAR_DAYS {
            violations.add(
                "days",
                format!("at most {} days per call", parse::MAX_CALENDAR_DAYS),
            );
        }
        let mut seen = HashSet::new();
        let mut days = Vec::with_capacity(message.days.len());
        for (index, wire) in message.days.iter().enumerate() {
            let prefix = format!("days[{index}]");
            if let Some(day) = parse::calendar_day(&mut violations, &prefix, wire) {
                if !seen.insert(day.date) {
                    violations.add(
                        format!("{prefix}.date"),
                        format!("{} is listed twice", day.date),
                    );
                }
                days.push(day);
            }
        }
        if !violations.is_empty() {
            return Err(invalid_argument(&violations));
        }
        let days = self.execution.upsert_calendar_days(&context, days).await?;
        Ok(Response::new(pb::UpsertCalendarDaysResponse {
            days: days
                .iter()
                .map(|day| calendar_day_to_wire(day, DaySource::Override))
                .collect(),
        }))
    }

    async fn delete_calendar_day(
        &self,
        request: Request<pb::DeleteCalendarDayRequest>,
    ) -> Result<Response<pb::DeleteCalendarDayResponse>, Status> {
        RequestContext::of(&request)?;
        let message = request.into_inner();
        let mut violations = Violations::new();
        parse::calendar_name(&mut violations, "calendar", &message.calendar);
        let day = NaiveDate::parse_from_str(&message.date, "%Y-%m-%d").ok();
        if day.is_none() {
            violations.add("date", "must be a date as YYYY-MM-DD");
        }
        let (Some(day), true) = (day, violations.is_empty()) else {
            return Err(invalid_argument(&violations));
        };
        self.execution.delete_calendar_day(day).await?;
        Ok(Response::new(pb::DeleteCalendarDayResponse {}))
    }

    async fn list_calendar_days(
        &self,
        request: Request<pb::ListCalendarDaysRequest>,
    ) -> Result<Response<pb::ListCalendarDaysResponse>, Status> {
        RequestContext::of(&request)?;
        let message = request.into_inner();
        let mut violations = Violations::new();
        parse::calendar_name(&mut violations, "calendar", &message.calendar);
        if !violations.is_empty() {
            return Err(invalid_argument(&violations));
        }
        let range = if message.start_date.is_empty() && message.end_date.is_empty() {
            None
        } else {
            let start = date("start_date", &message.start_date)?;
            let end = date("end_date", &message.end_date)?;
            if end < start {
                return Err(invalid_field("end_date", "must not be before start_date"));
            }
            if (end - start).num_days() > MAX_CALENDAR_DAYS {
                return Err(invalid_field("end_date", "at most ten years per request"));
            }
            Some((start, end))
        };
        let days = self
            .execution
            .calendar_days(range, message.overrides_only)
            .await?;
        Ok(Response::new(pb::ListCalendarDaysResponse {
            days: days
                .iter()
                .map(|(day, source)| calendar_day_to_wire(day, *source))
                .collect(),
        }))
    }

    async fn get_clock(
        &self,
        request: Request<pb::GetClockRequest>,
    ) -> Result<Response<pb::GetClockResponse>, Status> {
        RequestContext::of(&request)?;
        let clock = self.execution.clock_view();
        Ok(Response::new(pb::GetClockResponse {
            now: Some(timestamp(clock.now)),
            is_open: clock.is_open,
            next_open: Some(timestamp(clock.next_open)),
            next_close: Some(timestamp(clock.next_close)),
            speed: clock.speed.to_string(),
        }))
    }
}
