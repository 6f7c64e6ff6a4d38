//! `text_enum!`: a field-less enum with one fixed text per variant, the text
//! stored in databases and written to logs. Every service's status, kind and
//! mode enums are declared with it, so `as_str` and `parse` cannot drift
//! apart.

/// Declares a field-less enum whose variants each have one text, with
/// `as_str`, `parse` (its inverse; `None` on an unknown text) and `Display`
/// (the text). The enum derives `Debug`, `Clone`, `Copy`, `PartialEq`, `Eq`
/// and `Hash`; further derives and attributes go before `enum` as usual, on
/// the enum or on a variant (`#[default]`).
///
/// ```
/// rebalancer_domain::text_enum! {
///     /// Lifecycle of a thing.
///     #[derive(Default)]
///     pub enum ThingStatus {
///         #[default]
///         Active = "active",
///         NeedsAdjustment = "needs_adjustment",
///     }
/// }
///
/// assert_eq!(ThingStatus::NeedsAdjustment.as_str(), "needs_adjustment");
/// assert_eq!(ThingStatus::parse("active"), Some(ThingStatus::Active));
/// assert_eq!(ThingStatus::parse("Active"), None);
/// assert_eq!(ThingStatus::default().to_string(), "active");
/// ```
#[macro_export]
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $(
                $(#[$variant_meta:meta])*
                $variant:ident = $text:literal
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $(
                $(#[$variant_meta])*
                $variant
            ),*
        }

        impl $name {
            /// The text stored and logged.
            #[must_use]
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),*
                }
            }

            /// Parses [`Self::as_str`].
            #[must_use]
            pub fn parse(text: &str) -> ::core::option::Option<Self> {
                match text {
                    $($text => ::core::option::Option::Some(Self::$variant),)*
                    _ => ::core::option::Option::None,
                }
            }
        }

        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

#[cfg(test)]
mod tests {
    crate::text_enum! {
        /// Two variants, one with a default.
        #[derive(Default, PartialOrd, Ord)]
        enum Sample {
            /// The first.
            #[default]
            First = "first",
            SecondOne = "second_one",
        }
    }

    #[test]
    fn texts_round_trip_and_unknown_texts_are_none() {
        for sample in [Sample::First, Sample::SecondOne] {
            assert_eq!(Sample::parse(sample.as_str()), Some(sample));
            assert_eq!(sample.to_string(), sample.as_str());
        }
        assert_eq!(Sample::SecondOne.as_str(), "second_one");
        assert_eq!(Sample::parse("SecondOne"), None);
        assert_eq!(Sample::default(), Sample::First);
        assert!(Sample::First < Sample::SecondOne);
    }
}
