//! Enums that people name (on the command line, in an API request) and the store keeps by
//! name: one table of names per enum, parsed with `FromStr`. The library knows no
//! command-line parser; the CLI turns these tables into its possible values.

/// An enum whose values have names.
pub trait Named: Sized + Copy + PartialEq + 'static {
    /// Every value, with its name.
    const NAMES: &'static [(Self, &'static str)];

    /// This value's name.
    fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(value, _)| *value == self)
            .map_or("", |(_, name)| name)
    }
}

/// A name that is none of an enum's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{given}` is not one of: {}", expected.join(", "))]
pub struct UnknownName {
    pub given: String,
    pub expected: Vec<&'static str>,
}

/// The value named `name`.
pub fn parse<T: Named>(name: &str) -> Result<T, UnknownName> {
    T::NAMES
        .iter()
        .find(|(_, n)| *n == name)
        .map(|(value, _)| *value)
        .ok_or_else(|| UnknownName {
            given: name.to_string(),
            expected: T::NAMES.iter().map(|(_, n)| *n).collect(),
        })
}

/// Implements [`Named`] and `FromStr` for an enum from its table of names.
macro_rules! named {
    ($ty:ty { $($value:ident => $name:literal),+ $(,)? }) => {
        impl $crate::named::Named for $ty {
            const NAMES: &'static [(Self, &'static str)] = &[$((<$ty>::$value, $name)),+];
        }
        impl std::str::FromStr for $ty {
            type Err = $crate::named::UnknownName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $crate::named::parse(s)
            }
        }
        // The store keeps the name: readable in the database, stable across versions.
        impl $crate::store::db::ToValue for $ty {
            fn to_value(&self) -> $crate::store::db::Value {
                $crate::store::db::Value::Text($crate::named::Named::name(*self).to_string())
            }
        }
        impl $crate::store::db::FromValue for $ty {
            fn from_value(value: &$crate::store::db::Value) -> Result<Self, String> {
                let text: String = $crate::store::db::FromValue::from_value(value)?;
                $crate::named::parse(&text).map_err(|e| e.to_string())
            }
        }
    };
}
pub(crate) use named;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::work::execution::Status;

    #[test]
    fn names_round_trip_and_unknown_ones_list_the_known() {
        for &(status, name) in Status::NAMES {
            assert_eq!(name.parse::<Status>(), Ok(status));
            assert_eq!(status.name(), name);
        }
        let err = "paused".parse::<Status>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "`paused` is not one of: queued, running, success, failed, timed-out, canceled"
        );
    }
}
