//! The FIX configuration file (`--fix-config`, TOML): the session as the
//! `hotfix` engine takes it, and how orders are written for this broker.
//!
//! ```toml
//! [session]
//! begin_string = "FIX.4.4"
//! sender_comp_id = "REBAL"
//! target_comp_id = "BROKER"
//! connection_host = "fix.broker.example"
//! connection_port = 9878
//! heartbeat_interval = 30
//! reconnect_interval = 5
//! trust_store = "native"          # TLS; leave out for plain TCP
//! [session.schedule]
//! start_time = "04:00:00"
//! end_time = "20:05:00"
//! weekdays = ["Mon", "Tue", "Wed", "Thu", "Fri"]
//! timezone = "America/New_York"
//!
//! [orders]
//! account = "FIRM-1"              # Account (1)
//! cash_order_qty = true           # notional orders as CashOrderQty (152); the default
//! extended_hours_tag = 336        # TradingSessionID
//! extended_hours_value = "EXT"
//! report_timeout_seconds = 15
//! ```

use std::path::Path;
use std::time::Duration;

use hotfix::config::SessionConfig;
use serde::Deserialize;

use crate::broker::fix::messages::OrderFields;

/// How long `submit` waits for an order's final report by default.
const REPORT_TIMEOUT_SECONDS: u64 = 15;

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrdersSection {
    account: Option<String>,
    #[serde(default = "yes")]
    cash_order_qty: bool,
    extended_hours_tag: Option<u32>,
    extended_hours_value: Option<String>,
    report_timeout_seconds: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    session: SessionConfig,
    orders: Option<OrdersSection>,
}

/// A loaded FIX configuration.
#[derive(Debug, Clone)]
pub struct FixConfig {
    pub session: SessionConfig,
    pub orders: OrderFields,
    /// How long an order may wait for its final execution report before the
    /// slice is retried (under the same ClOrdID).
    pub report_timeout: Duration,
}

impl FixConfig {
    /// Reads and checks the file.
    ///
    /// # Errors
    /// An unreadable file, TOML that does not parse, or settings that cannot work.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| anyhow::anyhow!("FIX config {}: {error}", path.display()))?;
        Self::parse(&text)
            .map_err(|error| anyhow::anyhow!("FIX config {}: {error}", path.display()))
    }

    /// Parses the TOML text.
    ///
    /// # Errors
    /// TOML that does not parse, or settings that cannot work.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let file: File = toml::from_str(text)?;
        if file.session.begin_string != "FIX.4.4" {
            anyhow::bail!(
                "session.begin_string {:?}: only FIX.4.4 is supported",
                file.session.begin_string
            );
        }
        if file.session.heartbeat_interval == 0 {
            anyhow::bail!("session.heartbeat_interval must be at least 1 second");
        }
        let orders = file.orders.unwrap_or(OrdersSection {
            account: None,
            cash_order_qty: true,
            extended_hours_tag: None,
            extended_hours_value: None,
            report_timeout_seconds: None,
        });
        let extended_hours = match (orders.extended_hours_tag, orders.extended_hours_value) {
            (Some(0), _) => anyhow::bail!("orders.extended_hours_tag must be a FIX tag number"),
            (Some(tag), Some(value)) => Some((tag, value)),
            (None, None) => None,
            _ => anyhow::bail!(
                "orders.extended_hours_tag and orders.extended_hours_value go together"
            ),
        };
        let timeout = orders
            .report_timeout_seconds
            .unwrap_or(REPORT_TIMEOUT_SECONDS);
        if timeout == 0 {
            anyhow::bail!("orders.report_timeout_seconds must be at least 1");
        }
        Ok(Self {
            session: file.session,
            orders: OrderFields {
                account: orders.account.filter(|account| !account.is_empty()),
                cash_order_qty: orders.cash_order_qty,
                extended_hours,
            },
            report_timeout: Duration::from_secs(timeout),
        })
    }

    /// The key of the session's stored state.
    #[must_use]
    pub fn session_key(&self) -> String {
        format!(
            "{}:{}->{}",
            self.session.begin_string, self.session.sender_comp_id, self.session.target_comp_id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[session]
begin_string = "FIX.4.4"
sender_comp_id = "REBAL"
target_comp_id = "BROKER"
connection_host = "127.0.0.1"
connection_port = 9878
heartbeat_interval = 30
"#;

    #[test]
    fn a_minimal_file_sends_dollars_as_cash_order_qty_without_account() {
        let config = FixConfig::parse(MINIMAL).expect("config");
        assert_eq!(config.session_key(), "FIX.4.4:REBAL->BROKER");
        assert_eq!(config.orders.account, None);
        assert!(config.orders.cash_order_qty);
        assert_eq!(config.report_timeout, Duration::from_secs(15));
    }

    #[test]
    fn order_settings_are_read_and_checked() {
        let full = format!(
            "{MINIMAL}\n[orders]\naccount = \"FIRM\"\ncash_order_qty = true\nextended_hours_tag = 336\nextended_hours_value = \"EXT\"\n"
        );
        let config = FixConfig::parse(&full).expect("config");
        assert_eq!(config.orders.extended_hours, Some((336, "EXT".to_owned())));
        let half = format!("{MINIMAL}\n[orders]\nextended_hours_tag = 336\n");
        assert!(FixConfig::parse(&half).is_err());
        let old = MINIMAL.replace("FIX.4.4", "FIX.4.2");
        assert!(FixConfig::parse(&old).is_err());
        let typo = format!("{MINIMAL}\n[orders]\nacount = \"FIRM\"\n");
        assert!(FixConfig::parse(&typo).is_err());
    }
}
