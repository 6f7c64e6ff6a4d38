//! `#[sql_store]`: store code written once for PostgreSQL and SQLite is an
//! ordinary `impl` block generic over the backend `DB`; this attribute adds
//! the type parameter and every sqlx bound that code needs (the column types
//! it binds and reads). Rust does not carry such bounds through a trait
//! alias, so this is the one place they are spelled out. The body stays plain
//! Rust: rustfmt formats it and code navigation follows it.
//!
//! ```text
//! #[rebalancer_kit::sql_store]
//! #[tonic::async_trait]
//! impl TargetStore for SqlStore<DB> { ... }
//! ```

use proc_macro::TokenStream;
use quote::quote;
use syn::{ItemImpl, WherePredicate, parse_macro_input, parse_quote};

/// Makes `impl [Trait for] Type<DB>` generic over a `rebalancer_kit::db::Backend`
/// `DB`, with the sqlx bounds of the workspace's store code.
#[proc_macro_attribute]
pub fn sql_store(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return syn::Error::new(
            proc_macro2::Span::call_site(),
            "#[sql_store] takes no arguments",
        )
        .to_compile_error()
        .into();
    }
    let mut block = parse_macro_input!(item as ItemImpl);
    block.generics.params.push(parse_quote!(DB));
    let predicates: [WherePredicate; 16] = [
        parse_quote!(DB: ::rebalancer_kit::db::Backend),
        parse_quote!(for<'c> &'c mut <DB as ::sqlx::Database>::Connection: ::sqlx::Executor<'c, Database = DB>),
        parse_quote!(<DB as ::sqlx::Database>::Arguments: ::sqlx::IntoArguments<DB>),
        parse_quote!(for<'a> ::std::string::String: ::sqlx::Encode<'a, DB> + ::sqlx::Decode<'a, DB> + ::sqlx::Type<DB>),
        parse_quote!(for<'a> ::std::option::Option<::std::string::String>: ::sqlx::Encode<'a, DB>),
        parse_quote!(for<'a> i64: ::sqlx::Encode<'a, DB> + ::sqlx::Decode<'a, DB> + ::sqlx::Type<DB>),
        parse_quote!(for<'a> ::std::option::Option<i64>: ::sqlx::Encode<'a, DB>),
        parse_quote!(for<'a> i32: ::sqlx::Encode<'a, DB> + ::sqlx::Decode<'a, DB> + ::sqlx::Type<DB>),
        parse_quote!(for<'a> bool: ::sqlx::Encode<'a, DB> + ::sqlx::Decode<'a, DB> + ::sqlx::Type<DB>),
        parse_quote!(for<'a> ::std::option::Option<bool>: ::sqlx::Encode<'a, DB>),
        parse_quote!(for<'a> ::rebalancer_kit::db::Dec: ::sqlx::Encode<'a, DB> + ::sqlx::Decode<'a, DB> + ::sqlx::Type<DB>),
        parse_quote!(for<'a> ::std::option::Option<::rebalancer_kit::db::Dec>: ::sqlx::Encode<'a, DB>),
        parse_quote!(for<'a> ::chrono::DateTime<::chrono::Utc>: ::sqlx::Encode<'a, DB> + ::sqlx::Decode<'a, DB> + ::sqlx::Type<DB>),
        parse_quote!(for<'a> ::std::option::Option<::chrono::DateTime<::chrono::Utc>>: ::sqlx::Encode<'a, DB>),
        parse_quote!(for<'a> &'a str: ::sqlx::ColumnIndex<<DB as ::sqlx::Database>::Row> + ::sqlx::Decode<'a, DB> + ::sqlx::Type<DB>),
        parse_quote!(usize: ::sqlx::ColumnIndex<<DB as ::sqlx::Database>::Row>),
    ];
    block
        .generics
        .make_where_clause()
        .predicates
        .extend(predicates);
    quote!(#block).into()
}
