//! Reconciliation of the book with the broker: the broker's statement of
//! each account's positions and cash (a CSV file in the layout below) is
//! compared with the book, line by line; every difference is a break to be
//! looked at. Nothing in the book is changed to match the broker.
//!
//! The statement layout, one header line then one line per holding:
//!
//! ```text
//! account_id,kind,symbol,quantity
//! acct-1,position,SPY,12.5
//! acct-1,position,BTC/USD,0.015
//! acct-1,cash,,1034.12
//! ```
//!
//! `kind` is `position` or `cash` (its symbol empty). An account in the
//! statement is compared in full: a symbol the book holds and the statement
//! does not list is held at zero by the broker. Its cash is compared when the
//! statement has a cash line for it. Accounts not in the statement are not
//! compared.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;

use crate::decimal::parse_decimal;
use crate::symbol::Symbol;
use crate::violation::Violations;

/// Lines a statement may have.
pub const MAX_STATEMENT_LINES: usize = 100_000;

const HEADER: [&str; 4] = ["account_id", "kind", "symbol", "quantity"];

/// One holding in the broker's statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementLine {
    pub account_id: String,
    /// `None` for the account's cash.
    pub symbol: Option<String>,
    pub quantity: Decimal,
}

/// Reads a statement; every problem is a violation of `field[line]`.
///
/// # Errors
/// A missing or wrong header, a malformed line, an unknown kind, a bad
/// symbol or quantity, a holding listed twice, too many lines.
pub fn parse_statement(field: &str, text: &str) -> Result<Vec<StatementLine>, Violations> {
    let mut violations = Violations::default();
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty());
    let header_ok = lines.next().is_some_and(|(_, header)| {
        let columns: Vec<String> = header
            .split(',')
            .map(|c| c.trim().to_ascii_lowercase())
            .collect();
        columns == HEADER
    });
    if !header_ok {
        violations.add(
            field,
            format!("the first line must be the header {}", HEADER.join(",")),
        );
        return Err(violations);
    }
    let mut parsed = Vec::new();
    let mut seen: BTreeSet<(String, Option<String>)> = BTreeSet::new();
    for (number, line) in lines {
        let at = format!("{field}[{number}]");
        if parsed.len() == MAX_STATEMENT_LINES {
            violations.add(
                field,
                format!("at most {MAX_STATEMENT_LINES} lines per statement"),
            );
            break;
        }
        let columns: Vec<&str> = line.split(',').map(str::trim).collect();
        let [account_id, kind, symbol, quantity] = columns[..] else {
            violations.add(at, format!("{} columns, expected 4", columns.len()));
            continue;
        };
        if let Some(problem) = crate::ids::external_id_problem(account_id) {
            violations.add(format!("{at}.account_id"), problem);
        }
        let symbol = match kind.to_ascii_lowercase().as_str() {
            "position" => match Symbol::parse(symbol) {
                Ok(symbol) => Some(symbol.to_string()),
                Err(error) => {
                    violations.add(format!("{at}.symbol"), error.to_string());
                    continue;
                }
            },
            "cash" if symbol.is_empty() => None,
            "cash" => {
                violations.add(format!("{at}.symbol"), "a cash line has no symbol");
                continue;
            }
            other => {
                violations.add(
                    format!("{at}.kind"),
                    format!("{other:?}: must be position or cash"),
                );
                continue;
            }
        };
        let quantity = match parse_decimal(quantity) {
            Ok(quantity) => quantity,
            Err(error) => {
                violations.add(format!("{at}.quantity"), error.to_string());
                continue;
            }
        };
        if !seen.insert((account_id.to_owned(), symbol.clone())) {
            violations.add(
                at,
                format!(
                    "{account_id} {} is listed twice",
                    symbol.as_deref().unwrap_or("cash")
                ),
            );
            continue;
        }
        parsed.push(StatementLine {
            account_id: account_id.to_owned(),
            symbol,
            quantity,
        });
    }
    violations.into_result(parsed)
}

/// An account as the book holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BookAccount {
    pub cash: Decimal,
    pub positions: BTreeMap<String, Decimal>,
}

/// Where the broker and the book disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub account_id: String,
    /// `None` for cash.
    pub symbol: Option<String>,
    /// `None` when the book has no such account.
    pub book: Option<Decimal>,
    pub broker: Decimal,
}

impl Difference {
    /// What an operator reads.
    #[must_use]
    pub fn detail(&self) -> String {
        let what = self.symbol.as_deref().unwrap_or("cash");
        match self.book {
            None => format!(
                "the broker holds {} {what} for {}, an account the book does not have",
                self.broker, self.account_id
            ),
            Some(book) => format!(
                "{what}: the broker holds {}, the book {book} (difference {})",
                self.broker,
                self.broker - book
            ),
        }
    }
}

/// Compares the statement with the book (`book` holds every account the
/// statement names that the book has). Differences come by account, cash
/// first, then by symbol.
#[must_use]
pub fn compare(
    statement: &[StatementLine],
    book: &BTreeMap<String, BookAccount>,
) -> Vec<Difference> {
    let mut by_account: BTreeMap<&str, Vec<&StatementLine>> = BTreeMap::new();
    for line in statement {
        by_account.entry(&line.account_id).or_default().push(line);
    }
    let mut differences = Vec::new();
    for (account_id, lines) in by_account {
        let Some(account) = book.get(account_id) else {
            differences.extend(lines.iter().map(|line| Difference {
                account_id: account_id.to_owned(),
                symbol: line.symbol.clone(),
                book: None,
                broker: line.quantity,
            }));
            continue;
        };
        if let Some(cash) = lines.iter().find(|line| line.symbol.is_none())
            && cash.quantity != account.cash
        {
            differences.push(Difference {
                account_id: account_id.to_owned(),
                symbol: None,
                book: Some(account.cash),
                broker: cash.quantity,
            });
        }
        let broker: BTreeMap<&str, Decimal> = lines
            .iter()
            .filter_map(|line| line.symbol.as_deref().map(|s| (s, line.quantity)))
            .collect();
        let symbols: BTreeSet<&str> = broker
            .keys()
            .copied()
            .chain(account.positions.keys().map(String::as_str))
            .collect();
        for symbol in symbols {
            let held = account.positions.get(symbol).copied().unwrap_or_default();
            let reported = broker.get(symbol).copied().unwrap_or_default();
            if held != reported {
                differences.push(Difference {
                    account_id: account_id.to_owned(),
                    symbol: Some(symbol.to_owned()),
                    book: Some(held),
                    broker: reported,
                });
            }
        }
    }
    differences
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    const STATEMENT: &str = "account_id,kind,symbol,quantity
acct-1,position,SPY,12
acct-1,position,btc/usd,0.5
acct-1,cash,,1000.00

acct-2,position,TLT,3
acct-9,position,QQQ,1
";

    fn book() -> BTreeMap<String, BookAccount> {
        BTreeMap::from([
            (
                "acct-1".to_owned(),
                BookAccount {
                    cash: dec!(1000),
                    positions: BTreeMap::from([
                        ("SPY".to_owned(), dec!(10)),
                        ("BTC/USD".to_owned(), dec!(0.5)),
                        ("AGG".to_owned(), dec!(2)),
                    ]),
                },
            ),
            (
                "acct-2".to_owned(),
                BookAccount {
                    cash: dec!(5),
                    positions: BTreeMap::from([("TLT".to_owned(), dec!(3))]),
                },
            ),
        ])
    }

    #[test]
    fn differences_are_found_both_ways_and_nothing_else() {
        let lines = parse_statement("statement_csv", STATEMENT).expect("statement");
        assert_eq!(lines.len(), 5);
        let differences = compare(&lines, &book());
        let found: Vec<(&str, Option<&str>, Option<Decimal>, Decimal)> = differences
            .iter()
            .map(|d| (d.account_id.as_str(), d.symbol.as_deref(), d.book, d.broker))
            .collect();
        assert_eq!(
            found,
            vec![
                // The book holds AGG the broker does not list; SPY differs.
                ("acct-1", Some("AGG"), Some(dec!(2)), dec!(0)),
                ("acct-1", Some("SPY"), Some(dec!(10)), dec!(12)),
                ("acct-9", Some("QQQ"), None, dec!(1)),
            ]
        );
        assert_eq!(
            differences[1].detail(),
            "SPY: the broker holds 12, the book 10 (difference 2)"
        );
        // acct-2 has no cash line: its cash (5) is not compared.
    }

    #[test]
    fn bad_statements_name_each_line() {
        let bad = "account_id,kind,symbol,quantity
acct-1,position,SPY,abc
acct-1,bond,X,1
acct-1,cash,SPY,1
acct-1,position,SPY
acct-1,position,TLT,1
acct-1,position,TLT,2
";
        let violations = parse_statement("statement_csv", bad).expect_err("bad");
        let fields: Vec<&str> = violations
            .as_slice()
            .iter()
            .map(|v| v.field.as_str())
            .collect();
        assert_eq!(
            fields,
            vec![
                "statement_csv[2].quantity",
                "statement_csv[3].kind",
                "statement_csv[4].symbol",
                "statement_csv[5]",
                "statement_csv[7]"
            ]
        );
        let headless =
            parse_statement("statement_csv", "acct-1,position,SPY,1").expect_err("no header");
        assert_eq!(headless.len(), 1);
    }
}
