//! Items: files in a dataset. Uploading stores the bytes once (by digest), records the item
//! with its system metadata, and, in the same transaction, runs what its caller says follows a
//! change (`ops` fires the item's triggers: [`OnChange`]).
//! The mimetype is sniffed from the content (never trusted from the name) and an image's size
//! is read from its header alone.

use std::io::Cursor;

use crate::store::{Db, NOW, OptionalExtension, Row, Store, Tx, params};
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::{Error, Kind, Result};

/// The mimetype of `bytes`, from magic numbers; UTF-8 text is `text/plain`, anything else
/// unknown is `application/octet-stream`.
pub fn sniff_mimetype(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "application/octet-stream".into();
    }
    if let Some(kind) = infer::get(bytes) {
        return kind.mime_type().to_string();
    }
    if std::str::from_utf8(bytes).is_ok() {
        "text/plain".into()
    } else {
        "application/octet-stream".into()
    }
}

/// Width and height from an image header, without decoding pixels.
pub fn image_size(bytes: &[u8]) -> Option<(u32, u32)> {
    image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .ok()?
        .into_dimensions()
        .ok()
}

/// Whether an item of `len` bytes may be given to a guest at all.
pub fn check_size(len: u64, max: u64) -> Result<(), String> {
    if len == 0 {
        Err("the item is empty (0 bytes)".into())
    } else if len > max {
        Err(format!("the item is {len} bytes, over the limit of {max}"))
    } else {
        Ok(())
    }
}

/// The system metadata of some bytes whose sha256 is `digest`, as items and guests see it.
pub fn system_metadata(name: &str, bytes: &[u8], digest: &str) -> Value {
    let size = image_size(bytes);
    json!({
        "mimetype": sniff_mimetype(bytes),
        "size": bytes.len(),
        "sha256": digest,
        "originalname": name,
        "width": size.map(|s| s.0),
        "height": size.map(|s| s.1),
    })
}

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ItemRecord {
    pub id: i64,
    pub dataset: String,
    pub name: String,
    /// The blob's sha256; for a linked item, '' until its first download (or the sha256 the
    /// link gave).
    pub digest: String,
    pub size: u64,
    pub mimetype: String,
    #[schema(value_type = Object)]
    pub metadata: Value,
    pub created_at: String,
    pub updated_at: String,
    /// Where a linked item's bytes come from (`prelabel link`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl ItemRecord {
    /// The document trigger filters look at.
    pub fn document(&self) -> Value {
        json!({"id": self.id, "name": self.name, "dataset": self.dataset, "metadata": self.metadata})
    }

    pub fn size_px(&self) -> Option<(u32, u32)> {
        let s = &self.metadata["system"];
        Some((s["width"].as_u64()? as u32, s["height"].as_u64()? as u32))
    }
}

/// What an upload did to one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Created,
    Updated,
    Unchanged,
}

/// What follows an item's change inside the transaction that wrote it, returning how many
/// executions it queued: `ops` passes `work::on_item_change` (triggers, pipelines), so that an item and
/// the work its triggers ask for commit together or not at all. Items know nothing of
/// triggers: the work layer reads items, never the other way round.
pub type OnChange<'a> = &'a dyn Fn(&Tx<'_>, &ItemRecord, Change) -> Result<usize>;

/// What is written under an item's name: its bytes (by digest) or link, and metadata. An
/// upload, a pipeline's copy and an item a function made are each one.
#[derive(Debug, Clone, PartialEq)]
pub struct Content {
    pub name: String,
    pub digest: String,
    pub size: u64,
    pub mimetype: String,
    pub metadata: Value,
    pub url: Option<String>,
}

impl Content {
    /// Bytes already stored as blob `digest`, with the system metadata sniffed from them and
    /// `user` metadata.
    pub fn of_bytes(name: &str, bytes: &[u8], digest: &str, user: Value) -> Self {
        let system = system_metadata(name, bytes, digest);
        Content {
            name: name.to_string(),
            digest: digest.to_string(),
            size: bytes.len() as u64,
            mimetype: system["mimetype"].as_str().unwrap_or_default().to_string(),
            metadata: json!({"system": system, "user": user}),
            url: None,
        }
    }
}

/// Stores `bytes` as item `name` of `dataset`: new name → created, new bytes under a known
/// name → updated, same bytes → unchanged (no event). Returns the item, what changed and
/// how many executions its triggers queued.
pub fn upload(
    store: &mut Store,
    dataset: &str,
    name: &str,
    bytes: &[u8],
    on_change: OnChange<'_>,
) -> Result<(ItemRecord, Change, usize)> {
    if dataset.trim().is_empty() {
        return Err(Error::invalid("dataset", "must not be empty"));
    }
    // The blob first: an item row never points at bytes that are not on disk.
    let digest = crate::files::sha256_hex(bytes);
    store.put_blob_as(bytes, &digest)?;
    let content = Content::of_bytes(name, bytes, &digest, json!({}));
    let tx = store.write()?;
    let put = put(&tx, dataset, &content, on_change)?;
    tx.commit()?;
    Ok(put)
}

/// Writes `content` as the item of its name in `dataset`, inside the caller's transaction:
/// created, updated (other bytes) or unchanged (the same bytes: no event, metadata kept).
fn put(
    tx: &Tx<'_>,
    dataset: &str,
    content: &Content,
    on_change: OnChange<'_>,
) -> Result<(ItemRecord, Change, usize)> {
    let dataset_id = create_dataset(tx, dataset)?;
    let existing: Option<(i64, String)> = tx
        .query_row(
            "SELECT id, digest FROM items WHERE dataset_id = $1 AND name = $2",
            params![dataset_id, content.name],
            |r| Ok((r.get("id")?, r.get("digest")?)),
        )
        .optional()?;
    let (id, change) = match existing {
        Some((id, old)) if old == content.digest => (id, Change::Unchanged),
        Some((id, _)) => {
            tx.execute(
                &format!(
                    "UPDATE items SET digest = $2, size = $3, mimetype = $4, metadata = $5, url = $6,
                        updated_at = {NOW} WHERE id = $1"
                ),
                params![
                    id,
                    content.digest,
                    content.size as i64,
                    content.mimetype,
                    content.metadata.to_string(),
                    content.url
                ],
            )?;
            (id, Change::Updated)
        }
        None => {
            let id: i64 = tx.query_row(
                "INSERT INTO items (dataset_id, name, digest, size, mimetype, metadata, url)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                params![
                    dataset_id,
                    content.name,
                    content.digest,
                    content.size as i64,
                    content.mimetype,
                    content.metadata.to_string(),
                    content.url
                ],
                |r| r.get(0),
            )?;
            (id, Change::Created)
        }
    };
    let (item, queued) = changed(tx, id, change, on_change)?;
    Ok((item, change, queued))
}

/// Item `id` as an item of the same name in `dataset` (its bytes, or its URL, shared): what a
/// pipeline's dataset node does, inside the caller's transaction. See [`put_from`].
pub(crate) fn copy_into(
    tx: &Tx<'_>,
    id: i64,
    dataset: &str,
    source: Value,
    on_change: OnChange<'_>,
) -> Result<(ItemRecord, Change, usize)> {
    let item = get_in(tx, id)?;
    let content = Content {
        name: item.name,
        digest: item.digest,
        size: item.size,
        mimetype: item.mimetype,
        metadata: item.metadata,
        url: item.url,
    };
    put_from(tx, dataset, content, source, on_change)
}

/// `content` (an item copied, or one a function made) written into `dataset` with `source` in
/// its system metadata (what put it there), inside the caller's transaction. Returns the item
/// written, what changed and how many executions its change queued.
pub(crate) fn put_from(
    tx: &Tx<'_>,
    dataset: &str,
    mut content: Content,
    source: Value,
    on_change: OnChange<'_>,
) -> Result<(ItemRecord, Change, usize)> {
    if let Some(system) = content
        .metadata
        .get_mut("system")
        .and_then(Value::as_object_mut)
    {
        system.insert("source".into(), source);
    }
    put(tx, dataset, &content, on_change)
}

/// The dataset's id, created if it is new (inside the caller's transaction).
pub(crate) fn create_dataset(tx: &Tx<'_>, dataset: &str) -> Result<i64> {
    tx.execute(
        "INSERT INTO datasets (name) VALUES ($1) ON CONFLICT DO NOTHING",
        params![dataset],
    )?;
    Ok(tx.query_row(
        "SELECT id FROM datasets WHERE name = $1",
        params![dataset],
        |r| r.get(0),
    )?)
}

/// An item just written: the record, and how many executions what follows its change
/// queued (none when nothing changed), inside the transaction that wrote it.
pub(crate) fn changed(
    tx: &Tx<'_>,
    id: i64,
    change: Change,
    on_change: OnChange<'_>,
) -> Result<(ItemRecord, usize)> {
    let item = get_in(tx, id)?;
    if change == Change::Unchanged {
        return Ok((item, 0));
    }
    let queued = on_change(tx, &item, change)?;
    Ok((item, queued))
}

const SELECT: &str = "SELECT i.id, d.name AS dataset, i.name, i.digest, i.size, i.mimetype, i.metadata, i.created_at, i.updated_at,
        i.url
   FROM items i JOIN datasets d ON d.id = i.dataset_id";

fn from_row(r: &Row) -> crate::store::db::Result<ItemRecord> {
    Ok(ItemRecord {
        id: r.get("id")?,
        dataset: r.get("dataset")?,
        name: r.get("name")?,
        digest: r.get("digest")?,
        size: r.get::<i64>("size")? as u64,
        mimetype: r.get("mimetype")?,
        metadata: r.json("metadata")?,
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
        url: r.get("url")?,
    })
}

fn get_in(conn: &Db, id: i64) -> Result<ItemRecord> {
    conn.query_row(&format!("{SELECT} WHERE i.id = $1"), params![id], from_row)
        .optional()?
        .ok_or_else(|| {
            Error::not_found(
                Kind::Item,
                id,
                format!("no item with id {id} (see: prelabel items list)"),
            )
        })
}

pub fn get(store: &Store, id: i64) -> Result<ItemRecord> {
    get_in(store.conn(), id)
}

/// A dataset's id; a dataset that does not exist is an error naming it.
pub fn dataset_id(store: &Store, dataset: &str) -> Result<i64> {
    store
        .conn()
        .query_row(
            "SELECT id FROM datasets WHERE name = $1",
            params![dataset],
            |r| r.get(0),
        )
        .optional()?
        .ok_or_else(|| {
            Error::not_found(
                Kind::Dataset,
                dataset,
                format!("no dataset named `{dataset}` (see: prelabel items list)"),
            )
        })
}

/// A dataset and how many items it holds.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Dataset {
    pub name: String,
    pub items: u64,
    pub created_at: String,
}

/// Every dataset, by name.
pub fn datasets(store: &Store) -> Result<Vec<Dataset>> {
    let datasets = store.conn().query_map(
        "SELECT d.name, (SELECT COUNT(*) FROM items i WHERE i.dataset_id = d.id), d.created_at
           FROM datasets d ORDER BY d.name",
        params![],
        |r| {
            Ok(Dataset {
                name: r.get(0)?,
                items: r.get(1)?,
                created_at: r.get(2)?,
            })
        },
    )?;
    Ok(datasets)
}

/// Items of a dataset (or of all datasets), by name.
pub fn list(store: &Store, dataset: Option<&str>) -> Result<Vec<ItemRecord>> {
    if let Some(dataset) = dataset {
        dataset_id(store, dataset)?;
    }
    let items = store.conn().query_map(
        &format!("{SELECT} WHERE CAST($1 AS TEXT) IS NULL OR d.name = $1 ORDER BY d.name, i.name"),
        params![dataset],
        from_row,
    )?;
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_from_content_not_name() {
        let mut png = Cursor::new(Vec::new());
        image::DynamicImage::new_rgb8(3, 2)
            .write_to(&mut png, image::ImageFormat::Png)
            .expect("encode");
        let png = png.into_inner();
        assert_eq!(sniff_mimetype(&png), "image/png");
        assert_eq!(image_size(&png), Some((3, 2)));
        assert_eq!(sniff_mimetype(b"hello, world\n"), "text/plain");
        assert_eq!(
            sniff_mimetype(&[0xff, 0xfe, 0x00, 0x81]),
            "application/octet-stream"
        );
        assert_eq!(image_size(b"hello"), None);
    }
}
