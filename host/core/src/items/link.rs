//! Linked items: items that point at an `http(s)` URL instead of bytes someone uploaded
//! (`prelabel link`). Linking stores the item and fires its triggers like an upload, with the
//! mimetype its URL's extension suggests; the host downloads the bytes when an execution (or a
//! thumbnail, or `--fetch`) first needs them ([`bytes`]), checks them against the digest the
//! link gave, keeps them in the blob store and records what they are.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::store::{NOW, OptionalExtension, Store, Tx, params};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::catalog::secret;
use crate::error::{Error, Result};
use crate::items::item::{self, Change, ItemRecord, OnChange};
use crate::runtime::download::{self, DownloadError};

/// One link: a URL, and optionally the item's name (default: the URL's last path segment),
/// user metadata and the sha256 the bytes must have.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub url: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    #[serde(default)]
    pub sha256: Option<String>,
}

impl Link {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_string(),
            name: None,
            metadata: None,
            sha256: None,
        }
    }
}

/// The links in a file: a JSON list of `{url, name?, metadata?, sha256?}`, or one URL per line
/// (blank lines and `#` comments skipped).
pub fn parse_list(text: &str) -> Result<Vec<Link>> {
    if text.trim_start().starts_with('[') {
        return serde_json::from_str(text)
            .map_err(|e| Error::invalid("from", format!("is not a JSON list of links: {e}")));
    }
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(Link::new)
        .collect())
}

/// A link checked: its URL parsed, its name, and the mimetype its extension suggests.
struct Checked {
    url: String,
    name: String,
    mimetype: &'static str,
    metadata: Value,
    sha256: String,
}

/// A URL's last path segment, percent-decoded as a path is (a `+` stays a `+`): the name of
/// what it points at.
pub fn file_name(url: &reqwest::Url) -> Option<String> {
    url.path_segments()
        .and_then(|mut s| s.next_back())
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
}

fn check(link: &Link) -> Result<Checked> {
    let invalid = |reason: String| Error::invalid("url", format!("`{}` {reason}", link.url));
    let url = reqwest::Url::parse(&link.url).map_err(|e| invalid(format!("is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("is not an http or https URL".into()));
    }
    let name = match (&link.name, file_name(&url)) {
        (Some(name), _) if !name.trim().is_empty() => name.clone(),
        (Some(_), _) => return Err(Error::invalid("name", "must not be empty")),
        (None, Some(last)) => last,
        (None, None) => {
            return Err(invalid(
                "has no file name: give one (`name` in a JSON list)".into(),
            ));
        }
    };
    let sha256 = match &link.sha256 {
        Some(d) if d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()) => {
            d.to_ascii_lowercase()
        }
        Some(d) => {
            return Err(Error::invalid(
                "sha256",
                format!("`{d}` is not 64 hex digits"),
            ));
        }
        None => String::new(),
    };
    let metadata = match &link.metadata {
        None => json!({}),
        Some(Value::Object(o)) => Value::Object(o.clone()),
        Some(_) => return Err(Error::invalid("metadata", "must be an object")),
    };
    let mimetype = mimetype_of(&name);
    Ok(Checked {
        url: url.to_string(),
        name,
        mimetype,
        metadata,
        sha256,
    })
}

/// What a name's extension suggests, until the bytes say.
fn mimetype_of(name: &str) -> &'static str {
    mime_guess::from_path(name)
        .first_raw()
        .unwrap_or("application/octet-stream")
}

/// What a dataset's downloads may do, beyond the defaults; given with a link, it stays with
/// the dataset (private addresses once allowed stay allowed; headers are added).
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Let the dataset's downloads reach loopback and private addresses.
    pub allow_private: bool,
    /// Headers sent with the dataset's downloads (to each item's own origin), each the value
    /// of a named secret: header name → secret name.
    pub headers: BTreeMap<String, String>,
}

/// Stores `links` as items of `dataset`, all or none: a new name is created, a known name
/// with another URL or digest updated, the same link again unchanged. Triggers fire as for
/// an upload. `access` is recorded on the dataset.
pub fn link(
    store: &mut Store,
    dataset: &str,
    links: &[Link],
    access: &Access,
    on_change: OnChange<'_>,
) -> Result<Vec<(ItemRecord, Change, usize)>> {
    if dataset.trim().is_empty() {
        return Err(Error::invalid("dataset", "must not be empty"));
    }
    secret::check_headers(store, &access.headers)?;
    let checked = links.iter().map(check).collect::<Result<Vec<_>>>()?;
    for (i, a) in checked.iter().enumerate() {
        if let Some(b) = checked[..i].iter().find(|b| b.name == a.name) {
            return Err(Error::invalid(
                "name",
                format!(
                    "`{}` is the name of both {} and {}: give names (a JSON list with `name`)",
                    a.name, b.url, a.url
                ),
            ));
        }
    }
    let tx = store.write()?;
    let dataset_id = item::create_dataset(&tx, dataset)?;
    record_access(&tx, dataset_id, access)?;
    let mut done = Vec::new();
    for c in checked {
        let (id, change) = put_link(&tx, dataset_id, &c)?;
        let (record, queued) = item::changed(&tx, id, change, on_change)?;
        done.push((record, change, queued));
    }
    tx.commit()?;
    Ok(done)
}

/// What the dataset's downloads may do: reach private addresses, send these headers.
fn record_access(tx: &Tx<'_>, dataset_id: i64, access: &Access) -> Result<()> {
    if access.allow_private {
        tx.execute(
            "UPDATE datasets SET allow_private = 1 WHERE id = $1",
            params![dataset_id],
        )?;
    }
    if !access.headers.is_empty() {
        let mut headers: BTreeMap<String, String> = tx.query_row(
            "SELECT headers FROM datasets WHERE id = $1",
            params![dataset_id],
            |r| r.json(0),
        )?;
        headers.extend(access.headers.clone());
        tx.execute(
            "UPDATE datasets SET headers = $2 WHERE id = $1",
            params![dataset_id, json!(headers).to_string()],
        )?;
    }
    Ok(())
}

/// One checked link as an item of the dataset: created, updated, or left as it was.
fn put_link(tx: &Tx<'_>, dataset_id: i64, c: &Checked) -> Result<(i64, Change)> {
    let metadata = json!({
        "system": {"name": c.name, "mimetype": c.mimetype, "url": c.url},
        "user": c.metadata,
    });
    let existing: Option<(i64, Option<String>, String, String)> = tx
        .query_row(
            "SELECT id, url, digest, metadata FROM items WHERE dataset_id = $1 AND name = $2",
            params![dataset_id, c.name],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let same = |url: &Option<String>, digest: &str, old: &str| {
        url.as_deref() == Some(c.url.as_str())
            && (c.sha256.is_empty() || c.sha256 == digest)
            && serde_json::from_str::<Value>(old).is_ok_and(|m| m["user"] == metadata["user"])
    };
    let (id, change) = match existing {
        Some((id, url, digest, old)) if same(&url, &digest, &old) => (id, Change::Unchanged),
        Some((id, ..)) => {
            tx.execute(
                &format!(
                    "UPDATE items SET url = $2, digest = $3, size = 0, mimetype = $4, metadata = $5,
                        updated_at = {NOW} WHERE id = $1"
                ),
                params![id, c.url, c.sha256, c.mimetype, metadata.to_string()],
            )?;
            (id, Change::Updated)
        }
        None => {
            let id: i64 = tx.query_row(
                "INSERT INTO items (dataset_id, name, url, digest, size, mimetype, metadata)
                 VALUES ($1, $2, $3, $4, 0, $5, $6) RETURNING id",
                params![
                    dataset_id,
                    c.name,
                    c.url,
                    c.sha256,
                    c.mimetype,
                    metadata.to_string()
                ],
                |r| r.get(0),
            )?;
            (id, Change::Created)
        }
    };
    Ok((id, change))
}

/// Whether the item's bytes must be downloaded first: a linked item whose blob the store does
/// not have (yet, or any more).
pub fn needs_download(store: &Store, item: &ItemRecord) -> Result<bool> {
    Ok(item.url.is_some() && (item.digest.is_empty() || !store.has_blob(&item.digest)?))
}

/// An item's bytes: its blob when the store has it, else (a linked item) downloaded within
/// `max_bytes` and `deadline`, checked against the digest the item has, stored, and the item
/// updated with what they are (digest, size, mimetype, width and height).
pub fn bytes(
    store: &Store,
    item: &ItemRecord,
    max_bytes: u64,
    deadline: Duration,
) -> Result<Vec<u8>> {
    let url = match &item.url {
        Some(url) if needs_download(store, item)? => url,
        _ => return Ok(store.read_blob(&item.digest)?),
    };
    let failed = |source: DownloadError| Error::Download {
        url: url.clone(),
        source,
    };
    let (allow_private, headers): (bool, BTreeMap<String, String>) = store.conn().query_row(
        "SELECT allow_private, headers FROM datasets WHERE name = $1",
        params![&item.dataset],
        |r| Ok((r.get(0)?, r.json(1)?)),
    )?;
    let limits = download::Limits {
        max_bytes,
        allow_private,
        deadline,
    };
    // The dataset's headers go to the item's own origin; a redirect elsewhere goes without.
    let grant = match reqwest::Url::parse(url) {
        Ok(parsed) if !headers.is_empty() => Some(download::Grant {
            origin: parsed.origin(),
            headers: secret::headers(store, &headers)?,
            trusted: false,
        }),
        _ => None,
    };
    let body = download::fetch(url, &limits, grant.as_ref()).map_err(failed)?;
    let digest = crate::files::sha256_hex(&body);
    if !item.digest.is_empty() && item.digest != digest {
        return Err(failed(DownloadError::Changed {
            got: digest,
            want: item.digest.clone(),
        }));
    }
    store.put_blob_as(&body, &digest)?;
    let mut system = item::system_metadata(&item.name, &body, &digest);
    system["url"] = json!(url);
    let metadata = json!({"system": system, "user": item.metadata["user"]});
    // Only if the item still points at this URL: a link changed meanwhile keeps its own.
    store.conn().execute(
        &format!(
            "UPDATE items SET digest = $3, size = $4, mimetype = $5, metadata = $6, updated_at = {NOW}
              WHERE id = $1 AND url = $2"
        ),
        params![
            item.id,
            url,
            digest,
            body.len() as i64,
            metadata["system"]["mimetype"].as_str().unwrap_or_default(),
            metadata.to_string()
        ],
    )?;
    // Executions that started before the item had bytes run on these: they are not stale.
    store.conn().execute(
        "UPDATE executions SET item_digest = $2
          WHERE item_id = $1 AND status = 'running' AND item_digest = ''",
        params![item.id, digest],
    )?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_json_or_lines_and_names_come_from_the_url() {
        let lines =
            parse_list("# photos\nhttps://a.example/x/one.jpg\n\n  https://a.example/two.PNG  \n")
                .expect("lines");
        assert_eq!(
            lines,
            [
                Link::new("https://a.example/x/one.jpg"),
                Link::new("https://a.example/two.PNG")
            ]
        );
        let json = parse_list(
            r#"[{"url": "https://a.example/?id=3", "name": "three.jpg", "metadata": {"k": 1}}]"#,
        )
        .expect("json");
        assert_eq!(json[0].name.as_deref(), Some("three.jpg"));
        assert!(parse_list(r#"[{"url": "https://a.example/a.jpg", "size": 3}]"#).is_err());

        let checked = check(&Link::new("https://a.example/some%20photo+1.JPG")).expect("a link");
        assert_eq!(checked.name, "some photo+1.JPG");
        assert_eq!(checked.mimetype, "image/jpeg");
        for (url, says) in [
            ("ftp://a.example/a.jpg", "not an http or https URL"),
            ("not a url", "is not a URL"),
            ("https://a.example/", "has no file name"),
        ] {
            let error = check(&Link::new(url)).err().expect(url).to_string();
            assert!(error.contains(says), "{url}: {error}");
        }
        let mut bad = Link::new("https://a.example/a.jpg");
        bad.sha256 = Some("abc".into());
        assert!(check(&bad).is_err());
    }
}
