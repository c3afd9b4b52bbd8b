//! Named secrets: values (an API token) that downloads send as headers, stored in a table of
//! their own and referred to by name. Listing shows names and times, never values; a
//! dataset's headers name the secret (`Authorization` → `photos-token`), so the value is read
//! only when a request is made, and changing it changes every download that uses it.
//! A package's secret init inputs (`secret = true`, an API key) work the same way: the
//! deployer gives the secret's name (`--init api_key=remote-key`), the service stores the
//! name, and the value is read only to hand it to `init` ([`reveal`]).

use std::collections::BTreeMap;

use crate::store::{NOW, OptionalExtension, Store, params};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;

use crate::error::{Error, Kind, Result};
use crate::package::manifest::{InputValue, Manifest};

/// A secret as listed: its name and when it was set, not its value.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Secret {
    pub name: String,
    /// The datasets whose downloads send it.
    pub used_by: Vec<String>,
    /// The services whose secret init inputs name it.
    pub named_by: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// Secret names are shell- and URL-friendly: letters, digits, `-`, `_`, `.`, 1-64 of them.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "name",
            format!("`{name}` is not a secret name: 1-64 letters, digits, `-`, `_` or `.`"),
        ))
    }
}

/// Sets a secret's value (a new one, or a new value for it). The value must be a valid
/// header value: no control characters such as newlines.
pub fn set(store: &mut Store, name: &str, value: &str) -> Result<Secret> {
    check_name(name)?;
    if value.is_empty() || HeaderValue::from_str(value).is_err() {
        return Err(Error::invalid(
            "value",
            "must be non-empty text without control characters (it is sent as a header)",
        ));
    }
    store.conn().execute(
        &format!(
            "INSERT INTO secrets (name, value) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = {NOW}"
        ),
        params![name, value],
    )?;
    get(store, name)
}

/// Every secret, by name (without values).
pub fn list(store: &Store) -> Result<Vec<Secret>> {
    let rows: Vec<(String, String, String)> = store.conn().query_map(
        "SELECT name, created_at, updated_at FROM secrets ORDER BY name",
        params![],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let datasets = dataset_headers(store)?;
    let services = service_secrets(store)?;
    Ok(rows
        .into_iter()
        .map(|(name, created_at, updated_at)| Secret {
            used_by: using(&datasets, &name),
            named_by: naming(&services, &name),
            name,
            created_at,
            updated_at,
        })
        .collect())
}

fn not_found(name: &str) -> Error {
    Error::not_found(
        Kind::Secret,
        name,
        format!("no secret named `{name}` (set it with `prelabel secret set {name}`)"),
    )
}

/// One secret (without its value).
pub fn get(store: &Store, name: &str) -> Result<Secret> {
    let found: Option<(String, String)> = store
        .conn()
        .query_row(
            "SELECT created_at, updated_at FROM secrets WHERE name = $1",
            params![name],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (created_at, updated_at) = found.ok_or_else(|| not_found(name))?;
    Ok(Secret {
        name: name.to_string(),
        used_by: using(&dataset_headers(store)?, name),
        named_by: naming(&service_secrets(store)?, name),
        created_at,
        updated_at,
    })
}

/// Deletes a secret that no dataset uses and no service names.
pub fn delete(store: &mut Store, name: &str) -> Result<()> {
    let secret = get(store, name)?;
    if !secret.named_by.is_empty() {
        return Err(Error::Conflict {
            kind: Kind::Secret,
            name: name.to_string(),
            message: format!(
                "secret `{name}` is named by the init inputs of service(s) {}: deploy them with another secret, or delete them, first",
                secret.named_by.join(", ")
            ),
        });
    }
    if !secret.used_by.is_empty() {
        return Err(Error::Conflict {
            kind: Kind::Secret,
            name: name.to_string(),
            message: format!(
                "secret `{name}` is sent by the downloads of dataset(s) {}: link them without it first",
                secret.used_by.join(", ")
            ),
        });
    }
    store
        .conn()
        .execute("DELETE FROM secrets WHERE name = $1", params![name])?;
    Ok(())
}

/// Every dataset's headers (header name → secret name), read strictly.
fn dataset_headers(store: &Store) -> Result<Vec<(String, BTreeMap<String, String>)>> {
    Ok(store.conn().query_map(
        "SELECT name, headers FROM datasets ORDER BY name",
        params![],
        |r| Ok((r.get(0)?, r.json(1)?)),
    )?)
}

/// Every service with the secrets its secret init inputs name (its revision's manifest says
/// which inputs are secret).
fn service_secrets(store: &Store) -> Result<Vec<(String, Vec<String>)>> {
    Ok(store.conn().query_map(
        "SELECT s.name, s.init_inputs, r.manifest FROM services s
           JOIN revisions r ON r.id = s.revision_id ORDER BY s.name",
        params![],
        |r| {
            let init: BTreeMap<String, InputValue> = r.json(1)?;
            let manifest: Manifest = r.json(2)?;
            let named = manifest
                .secrets()
                .filter_map(|i| match init.get(&i.name) {
                    Some(InputValue::String(secret)) => Some(secret.clone()),
                    _ => None,
                })
                .collect();
            Ok((r.get(0)?, named))
        },
    )?)
}

/// The services whose secret init inputs name `secret`.
fn naming(services: &[(String, Vec<String>)], secret: &str) -> Vec<String> {
    services
        .iter()
        .filter(|(_, named)| named.iter().any(|s| s == secret))
        .map(|(service, _)| service.clone())
        .collect()
}

/// The datasets whose headers name `secret`.
fn using(datasets: &[(String, BTreeMap<String, String>)], secret: &str) -> Vec<String> {
    datasets
        .iter()
        .filter(|(_, headers)| headers.values().any(|s| s == secret))
        .map(|(dataset, _)| dataset.clone())
        .collect()
}

/// A header name, checked.
fn header_name(header: &str) -> Result<HeaderName> {
    HeaderName::from_bytes(header.as_bytes())
        .map_err(|_| Error::invalid("header", format!("`{header}` is not a header name")))
}

/// Checks `HEADER=SECRET` pairs: a header name that is one, a secret that exists.
pub fn check_headers(store: &Store, headers: &BTreeMap<String, String>) -> Result<()> {
    for (header, secret) in headers {
        header_name(header)?;
        get(store, secret)?;
    }
    Ok(())
}

/// A secret's value, read when a request or an instance needs it.
fn value(store: &Store, name: &str) -> Result<String> {
    let value: Option<String> = store
        .conn()
        .query_row(
            "SELECT value FROM secrets WHERE name = $1",
            params![name],
            |r| r.get(0),
        )
        .optional()?;
    value.ok_or_else(|| not_found(name))
}

/// Checks that every secret init input of `manifest` names a stored secret. The message
/// never repeats the value given: a deployer who typed the key itself must not see it echoed.
pub fn check_init(
    store: &Store,
    manifest: &Manifest,
    init: &BTreeMap<String, InputValue>,
) -> Result<()> {
    for input in manifest.secrets() {
        let named = match init.get(&input.name) {
            Some(InputValue::String(name)) => {
                check_name(name).is_ok() && value(store, name).is_ok()
            }
            _ => false,
        };
        if !named {
            return Err(Error::invalid(
                "init",
                format!(
                    "init input `{0}` is secret: give the name of a stored secret                      (`prelabel secret set NAME`, then `--init {0}=NAME`); what was given names none",
                    input.name
                ),
            ));
        }
    }
    Ok(())
}

/// `init` as an instance receives it: each secret input's value is the value of the secret
/// it names. A secret deleted since is an error naming it.
pub fn reveal(
    store: &Store,
    manifest: &Manifest,
    init: &BTreeMap<String, InputValue>,
) -> Result<BTreeMap<String, InputValue>> {
    let mut revealed = init.clone();
    for input in manifest.secrets() {
        if let Some(InputValue::String(name)) = init.get(&input.name) {
            revealed.insert(input.name.clone(), InputValue::String(value(store, name)?));
        }
    }
    Ok(revealed)
}

/// The values of `manifest`'s secret inputs in `revealed` (init as [`reveal`] made it): what
/// [`redact`] hides.
pub fn values(manifest: &Manifest, revealed: &BTreeMap<String, InputValue>) -> Vec<String> {
    manifest
        .secrets()
        .filter_map(|input| match revealed.get(&input.name) {
            Some(InputValue::String(value)) if !value.is_empty() => Some(value.clone()),
            _ => None,
        })
        .collect()
}

/// `text` with every one of `values` in it replaced by `[secret]`: a guest that prints its own
/// key (a configuration dump, an API's error that echoes the header) does not put it in the
/// execution's logs or error. An accident caught, not a barrier: a guest that means to leak
/// can encode it.
pub fn redact(text: &str, values: &[String]) -> String {
    values.iter().fold(text.to_string(), |text, value| {
        text.replace(value.as_str(), "[secret]")
    })
}

/// The headers to send: each named secret's value, marked sensitive (never printed by the
/// client's debug output). A secret deleted since is an error naming it.
pub fn headers(store: &Store, headers: &BTreeMap<String, String>) -> Result<HeaderMap> {
    let mut map = HeaderMap::new();
    for (header, secret) in headers {
        let value = value(store, secret)?;
        let name = header_name(header)?;
        let mut value = HeaderValue::from_str(&value).map_err(|_| {
            Error::invalid("value", format!("secret `{secret}` is no header value"))
        })?;
        value.set_sensitive(true);
        map.insert(name, value);
    }
    Ok(map)
}
