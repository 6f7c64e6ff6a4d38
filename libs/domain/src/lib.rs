//! Pure domain logic of Rebalancer. Nothing here reads a clock, a socket or a
//! database: callers pass `now`, prices and holdings in, and get plain values
//! back, so every rule can be tested exhaustively and fast.

pub mod account;
pub mod algo;
pub mod allocation;
pub mod average_price;
pub mod backtest;
pub mod band_edge;
pub mod booking;
pub mod calendar;
pub mod calendar_days;
pub mod cash;
pub mod decimal;
pub mod evaluation;
pub mod exact;
pub mod harvest;
pub mod holdings;
pub mod household;
pub mod ids;
pub mod lots;
pub mod netting;
pub mod portfolio;
pub mod preferences;
pub mod quality;
pub mod reconcile;
pub mod run;
pub mod sleeve_minimums;
pub mod sleeves;
pub mod symbol;
pub mod tax;
mod text_enum;
pub mod trades;
pub mod trading_hours;
pub mod violation;
pub mod wash_sale;

pub use decimal::parse_decimal;
pub use symbol::Symbol;
pub use violation::{FieldViolation, Violations};
