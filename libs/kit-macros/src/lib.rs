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
use syn::{
    GenericParam, ImplItemFn, ItemFn, ItemImpl, WherePredicate, parse_macro_input, parse_quote,
};

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
    let predicates: [WherePredicate; 17] = [
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
        parse_quote!(for<'a> ::std::vec::Vec<u8>: ::sqlx::Encode<'a, DB> + ::sqlx::Decode<'a, DB> + ::sqlx::Type<DB>),
    ];
    block
        .generics
        .make_where_clause()
        .predicates
        .extend(predicates);
    quote!(#block).into()
}

/// Bounds that let a row decoder generic over `R` read every column type the
/// workspace stores (text, integers, booleans, exact decimals, timestamps,
/// and `Option`s of them) from a PostgreSQL or SQLite row by column name.
fn row_predicates(row: &syn::Ident) -> [WherePredicate; 8] {
    [
        parse_quote!(#row: ::sqlx::Row),
        parse_quote!(for<'r> &'r str: ::sqlx::ColumnIndex<#row>),
        parse_quote!(for<'r> ::std::string::String: ::sqlx::Decode<'r, <#row as ::sqlx::Row>::Database> + ::sqlx::Type<<#row as ::sqlx::Row>::Database>),
        parse_quote!(for<'r> i64: ::sqlx::Decode<'r, <#row as ::sqlx::Row>::Database> + ::sqlx::Type<<#row as ::sqlx::Row>::Database>),
        parse_quote!(for<'r> i32: ::sqlx::Decode<'r, <#row as ::sqlx::Row>::Database> + ::sqlx::Type<<#row as ::sqlx::Row>::Database>),
        parse_quote!(for<'r> bool: ::sqlx::Decode<'r, <#row as ::sqlx::Row>::Database> + ::sqlx::Type<<#row as ::sqlx::Row>::Database>),
        parse_quote!(for<'r> ::rebalancer_kit::db::Dec: ::sqlx::Decode<'r, <#row as ::sqlx::Row>::Database> + ::sqlx::Type<<#row as ::sqlx::Row>::Database>),
        parse_quote!(for<'r> ::chrono::DateTime<::chrono::Utc>: ::sqlx::Decode<'r, <#row as ::sqlx::Row>::Database> + ::sqlx::Type<<#row as ::sqlx::Row>::Database>),
    ]
}

/// The first type parameter of a function: the row type of a decoder.
fn row_param(generics: &syn::Generics) -> Option<syn::Ident> {
    generics.params.iter().find_map(|param| match param {
        GenericParam::Type(param) => Some(param.ident.clone()),
        _ => None,
    })
}

/// A row decoder `fn x_from_row<R>(row: &R) -> ...` generic over the row
/// type: adds the bounds that let it read the workspace's column types from
/// a PostgreSQL or SQLite row by name (free functions and methods alike).
#[proc_macro_attribute]
pub fn sql_row(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return syn::Error::new(
            proc_macro2::Span::call_site(),
            "#[sql_row] takes no arguments",
        )
        .to_compile_error()
        .into();
    }
    let error = || {
        syn::Error::new(
            proc_macro2::Span::call_site(),
            "#[sql_row] needs a function with a type parameter for the row",
        )
        .to_compile_error()
        .into()
    };
    if let Ok(mut function) = syn::parse::<ItemFn>(item.clone()) {
        let Some(row) = row_param(&function.sig.generics) else {
            return error();
        };
        function
            .sig
            .generics
            .make_where_clause()
            .predicates
            .extend(row_predicates(&row));
        return quote!(#function).into();
    }
    let mut method = parse_macro_input!(item as ImplItemFn);
    let Some(row) = row_param(&method.sig.generics) else {
        return error();
    };
    method
        .sig
        .generics
        .make_where_clause()
        .predicates
        .extend(row_predicates(&row));
    quote!(#method).into()
}
