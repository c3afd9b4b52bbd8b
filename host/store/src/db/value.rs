//! Values as both engines store them (integers, reals, text, bytes, NULL), how Rust types
//! become parameters and columns become Rust types, and each driver's conversion of them.

use std::fmt;
use std::sync::Arc;

use bytes::BytesMut;
use postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

use super::DbError;

/// A value as stored: the types both engines hold the same way.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// What a query takes as a parameter.
pub trait ToValue {
    fn to_value(&self) -> Value;
}

/// What a column reads as; `Err` says why the stored value is not one.
pub trait FromValue: Sized {
    fn from_value(value: &Value) -> Result<Self, String>;
}

macro_rules! integers {
    ($($ty:ty),+) => {$(
        impl ToValue for $ty {
            fn to_value(&self) -> Value {
                // Sizes and counts far below i64::MAX; one past it is stored as the maximum
                // rather than wrapped to a negative number.
                Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
        impl FromValue for $ty {
            fn from_value(value: &Value) -> Result<Self, String> {
                match value {
                    Value::Int(i) => <$ty>::try_from(*i).map_err(|_| format!("{i} is out of range for {}", stringify!($ty))),
                    other => Err(format!("expected an integer, found {}", other.kind())),
                }
            }
        }
    )+};
}
integers!(i64, i32, u32, u64, usize, u16, u8);

impl ToValue for f64 {
    fn to_value(&self) -> Value {
        Value::Real(*self)
    }
}

impl ToValue for f32 {
    fn to_value(&self) -> Value {
        Value::Real(f64::from(*self))
    }
}

impl FromValue for f64 {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Real(f) => Ok(*f),
            Value::Int(i) => Ok(*i as f64),
            other => Err(format!("expected a number, found {}", other.kind())),
        }
    }
}

impl FromValue for f32 {
    fn from_value(value: &Value) -> Result<Self, String> {
        f64::from_value(value).map(|f| f as f32)
    }
}

impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}

impl FromValue for bool {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Int(0) => Ok(false),
            Value::Int(1) => Ok(true),
            other => Err(format!("expected 0 or 1, found {}", other.shown())),
        }
    }
}

impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_string())
    }
}

impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Text(t) => Ok(t.clone()),
            other => Err(format!("expected text, found {}", other.kind())),
        }
    }
}

impl ToValue for [u8] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}

impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Blob(self.clone())
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Blob(b) => Ok(b.clone()),
            other => Err(format!("expected bytes, found {}", other.kind())),
        }
    }
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, T::to_value)
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}

impl FromValue for Value {
    fn from_value(value: &Value) -> Result<Self, String> {
        Ok(value.clone())
    }
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Int(_) => "an integer",
            Value::Real(_) => "a real",
            Value::Text(_) => "text",
            Value::Blob(_) => "bytes",
        }
    }

    /// The value as an error message shows it (text cut at 80 characters).
    fn shown(&self) -> String {
        match self {
            Value::Null => "NULL".into(),
            Value::Int(i) => i.to_string(),
            Value::Real(f) => f.to_string(),
            Value::Text(t) => t.chars().take(80).collect(),
            Value::Blob(b) => format!("{} bytes", b.len()),
        }
    }
}

/// The parameters of one query.
pub type Params<'a> = &'a [&'a dyn ToValue];

/// `params![a, b, c]`: a query's parameters, `$1`, `$2`, `$3`.
#[macro_export]
macro_rules! params {
    () => { &[] as $crate::db::Params<'_> };
    ($($p:expr),+ $(,)?) => { &[$(&$p as &dyn $crate::db::ToValue),+] as $crate::db::Params<'_> };
}

/// One row of a result, read.
#[derive(Debug, Clone)]
pub struct Row {
    pub(super) columns: Arc<[String]>,
    pub(super) values: Vec<Value>,
}

impl Row {
    /// Column `column` (its name as the query gives it, or its position), read strictly: a
    /// value `T` does not accept is an error naming the column and the value, never a default.
    pub fn get<T: FromValue>(&self, column: impl Column) -> Result<T, DbError> {
        let index = column.index_in(self)?;
        T::from_value(&self.values[index]).map_err(|problem| self.bad(index, problem))
    }

    /// The columns' names, in order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The values, in the columns' order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// A JSON column, read strictly: text that does not parse is an error naming the column
    /// and the text (a dropped filter would make a trigger match more).
    pub fn json<T: serde::de::DeserializeOwned>(&self, column: impl Column) -> Result<T, DbError> {
        let index = column.index_in(self)?;
        let text: String = self.get(index)?;
        serde_json::from_str(&text).map_err(|e| self.bad(index, e))
    }

    /// The error for column `index` holding a value it may not.
    fn bad(&self, index: usize, problem: impl fmt::Display) -> DbError {
        DbError::Column {
            column: self.columns.get(index).cloned().unwrap_or_default(),
            value: self.values.get(index).map(Value::shown).unwrap_or_default(),
            problem: problem.to_string(),
        }
    }
}

/// Which column of a row: its name as the query gives it (`AS` where two tables' columns share
/// one, since PostgreSQL and SQLite both name a column by its last part), or its position. A
/// mapping by name keeps reading right when a query's columns change order.
pub trait Column: Copy {
    /// Its position in `row`, or an error naming it and what the row has.
    fn index_in(self, row: &Row) -> Result<usize, DbError>;
}

impl Column for usize {
    fn index_in(self, row: &Row) -> Result<usize, DbError> {
        if self < row.values.len() {
            Ok(self)
        } else {
            Err(DbError::NoColumn {
                column: format!("#{self}"),
                reason: format!("it has {} columns", row.values.len()),
            })
        }
    }
}

impl Column for &str {
    fn index_in(self, row: &Row) -> Result<usize, DbError> {
        let mut found = row.columns.iter().enumerate().filter(|(_, c)| *c == self);
        match (found.next(), found.next()) {
            (Some((index, _)), None) => Ok(index),
            (Some(_), Some(_)) => Err(DbError::NoColumn {
                column: self.to_string(),
                reason: format!("it has `{self}` twice (name one with AS)"),
            }),
            (None, _) => Err(DbError::NoColumn {
                column: self.to_string(),
                reason: format!("it has {}", row.columns.join(", ")),
            }),
        }
    }
}

pub(super) fn from_sqlite(value: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(t) => ValueRef::Text(t.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

pub(super) fn values(params: Params<'_>) -> Vec<Value> {
    params.iter().map(|p| p.to_value()).collect()
}

pub(super) fn refs(values: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

type BoxError = Box<dyn std::error::Error + Sync + Send>;

/// A value sent as the type PostgreSQL inferred for its parameter: an integer goes as
/// `int8`, `int4`, `int2`, `float8` or `bool` as the column asks, so that queries need no
/// casts for it.
impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => i.to_string().to_sql(ty, out),
                _ => i.to_sql(ty, out),
            },
            Value::Real(f) => match *ty {
                Type::FLOAT4 => (*f as f32).to_sql(ty, out),
                _ => f.to_sql(ty, out),
            },
            Value::Text(t) => t.as_str().to_sql(ty, out),
            Value::Blob(b) => b.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A column read as the [`Value`] of its type; a type the store does not use (NUMERIC from
/// an uncast SUM, say) is an error naming it, so that the query gets its cast.
impl<'a> FromSql<'a> for Value {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(match *ty {
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT2 => Value::Int(i16::from_sql(ty, raw)?.into()),
            Type::BOOL => Value::Int(bool::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => Value::Real(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => Value::Real(f32::from_sql(ty, raw)?.into()),
            Type::BYTEA => Value::Blob(raw.to_vec()),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                Value::Text(String::from_sql(ty, raw)?)
            }
            ref other => {
                return Err(format!("the store does not read columns of type {other}").into());
            }
        })
    }

    fn from_sql_null(_: &Type) -> Result<Self, BoxError> {
        Ok(Value::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row as a join of two tables that both have `name` gives it: `other` named with AS.
    fn row(columns: &[&str]) -> Row {
        Row {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            values: columns
                .iter()
                .map(|c| Value::Text(c.to_uppercase()))
                .collect(),
        }
    }

    #[test]
    fn columns_are_read_by_name_and_a_missing_or_shared_name_is_named() {
        let r = row(&["name", "other"]);
        assert_eq!(r.get::<String>("other").expect("by name"), "OTHER");
        assert_eq!(r.get::<String>(0).expect("by position"), "NAME");
        let missing = r.get::<String>("id").expect_err("no `id`");
        assert_eq!(
            missing.to_string(),
            "the query has no single column `id`: it has name, other"
        );
        let twice = row(&["name", "name"])
            .get::<String>("name")
            .expect_err("two columns are `name`");
        assert!(twice.to_string().contains("`name` twice"), "{twice}");
        let past = r.get::<String>(2).expect_err("two columns only");
        assert!(past.to_string().contains("it has 2 columns"), "{past}");
    }
}
