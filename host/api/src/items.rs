//! Datasets and items: list, upload (multipart; fires triggers exactly like `prelabel
//! upload`), an item's metadata, its original bytes, and its annotations.

use axum::Json;
use axum::Router;
use axum::body::Body as ResponseBody;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use serde::Deserialize;

use super::extract::{Body, Path, Query, Raw};
use super::{ApiError, AppState, Caller};
use prelabel::items::item::{Dataset, ItemRecord};
use prelabel::items::link::Link;
use prelabel::ops::Uploaded;
use prelabel::results::annotation::Stored;
use prelabel::results::export::Format;
use prelabel::results::review::{Change, Manual};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/datasets", get(datasets))
        // The upload counts its own bytes (see `read_files`).
        .route(
            "/datasets/{dataset}/items",
            post(upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/datasets/{dataset}/links", post(link))
        .route("/items", get(items))
        .route("/items/{id}", get(item))
        .route("/items/{id}/data", get(data))
        .route("/items/{id}/thumbnail", get(thumbnail))
        .route("/items/{id}/annotations", get(annotations).post(add))
        .route("/annotations/{id}", patch(review))
        .route("/datasets/{dataset}/export", get(export))
        .route("/datasets/{dataset}/evaluate", post(evaluate))
}

/// Every dataset, with how many items it holds.
#[utoipa::path(get, path = "/api/datasets", tag = "items",
    responses((status = 200, body = Vec<Dataset>)))]
pub async fn datasets(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Dataset>>, ApiError> {
    let scope = caller.scope();
    let mut datasets = state.run(|home| home.datasets()).await?;
    datasets.retain(|d| scope.sees(&d.name));
    Ok(Json(datasets))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ItemsQuery {
    /// Only this dataset's items.
    dataset: Option<String>,
}

/// Items, by dataset and name.
#[utoipa::path(get, path = "/api/items", tag = "items", params(ItemsQuery),
    responses((status = 200, body = Vec<ItemRecord>), (status = 404, body = super::error::ErrorBody)))]
pub async fn items(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ItemsQuery>,
) -> Result<Json<Vec<ItemRecord>>, ApiError> {
    if let Some(dataset) = &query.dataset {
        caller.dataset(dataset)?;
    }
    let scope = caller.scope();
    let mut items = state
        .run(move |home| home.items(query.dataset.as_deref()))
        .await?;
    items.retain(|i| scope.sees(&i.dataset));
    Ok(Json(items))
}

/// Uploads files (multipart form, one part per file, named by its file name) as items of
/// the dataset; the dataset is created by its first upload. Every part is read and checked
/// before anything is stored.
#[utoipa::path(post, path = "/api/datasets/{dataset}/items", tag = "items",
    params(("dataset" = String, Path, description = "the dataset")),
    request_body(content_type = "multipart/form-data", description = "one part per file"),
    responses((status = 200, body = Vec<Uploaded>), (status = 400, body = super::error::ErrorBody),
              (status = 413, body = super::error::ErrorBody)))]
pub async fn upload(
    State(state): State<AppState>,
    Path(dataset): Path<String>,
    multipart: Multipart,
) -> Result<Json<Vec<Uploaded>>, ApiError> {
    let files = read_files(multipart, state.max_body).await?;
    let uploaded = state
        .run(move |home| {
            files
                .iter()
                .map(|(name, bytes)| home.upload(&dataset, name, bytes))
                .collect()
        })
        .await?;
    Ok(Json(uploaded))
}

/// What `POST /api/datasets/{dataset}/links` takes: `prelabel link`'s arguments.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    links: Vec<Link>,
    /// Let the dataset's downloads reach loopback and private addresses.
    #[serde(default)]
    allow_private: bool,
    /// Headers for the dataset's downloads: header name → the secret whose value it sends.
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
}

/// Links items of the dataset to http(s) URLs, as `prelabel link`: all or none, triggers
/// fired as for an upload; the bytes are downloaded when an execution needs them.
#[utoipa::path(post, path = "/api/datasets/{dataset}/links", tag = "items",
    params(("dataset" = String, Path, description = "the dataset")),
    request_body = LinkRequest,
    responses((status = 200, body = Vec<Uploaded>), (status = 400, body = super::error::ErrorBody)))]
pub async fn link(
    State(state): State<AppState>,
    Path(dataset): Path<String>,
    Body(request): Body<LinkRequest>,
) -> Result<Json<Vec<Uploaded>>, ApiError> {
    let linked = state
        .run(move |home| {
            let access = prelabel::items::link::Access {
                allow_private: request.allow_private,
                headers: request.headers,
            };
            home.link(&dataset, &request.links, &access)
        })
        .await?;
    Ok(Json(linked))
}

/// Every part of an upload, read whole before anything is stored. A request that is refused
/// (over `limit`, a part without a file name) is still read to its end, up to four times the
/// limit, so that the client, still sending, gets the answer instead of a reset connection.
async fn read_files(
    mut multipart: Multipart,
    limit: usize,
) -> Result<Vec<(String, Vec<u8>)>, ApiError> {
    let broken =
        |e: axum::extract::multipart::MultipartError| ApiError::new(e.status(), e.body_text());
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the upload is over the limit of {limit} bytes (--max-upload-mb); nothing was stored"
            ),
        )
    };
    let (mut files, mut total, mut nameless) = (Vec::new(), 0usize, false);
    while let Some(mut field) = multipart.next_field().await.map_err(broken)? {
        let name = field
            .file_name()
            .filter(|n| !n.trim().is_empty())
            .map(str::to_string);
        nameless |= name.is_none();
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(broken)? {
            total = total.saturating_add(chunk.len());
            if total > limit.saturating_mul(4) {
                return Err(too_large());
            }
            // Once refused, the rest is read only to be dropped.
            if total <= limit && !nameless {
                bytes.extend_from_slice(&chunk);
            }
        }
        if let Some(name) = name.filter(|_| total <= limit && !nameless) {
            files.push((name, bytes));
        }
    }
    if total > limit {
        Err(too_large())
    } else if nameless {
        Err(ApiError::bad_request(
            "every part needs a file name (Content-Disposition filename); nothing was stored",
        ))
    } else if files.is_empty() {
        Err(ApiError::bad_request("no file in the upload"))
    } else {
        Ok(files)
    }
}

/// An item and its metadata.
#[utoipa::path(get, path = "/api/items/{id}", tag = "items",
    params(("id" = i64, Path, description = "the item")),
    responses((status = 200, body = ItemRecord), (status = 404, body = super::error::ErrorBody)))]
pub async fn item(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<ItemRecord>, ApiError> {
    Ok(Json(caller.item(&state, id).await?))
}

/// The item's original bytes. Images are served as what they are; anything else as an
/// attachment of no type, so that an uploaded page or script never runs in this origin.
#[utoipa::path(get, path = "/api/items/{id}/data", tag = "items",
    params(("id" = i64, Path, description = "the item")),
    responses((status = 200, description = "the bytes"), (status = 404, body = super::error::ErrorBody)))]
pub async fn data(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    caller.sees_item(&state, id).await?;
    let (item, bytes) = state.run(move |home| home.item_bytes(id)).await?;
    let image = item.mimetype.starts_with("image/") && item.mimetype != "image/svg+xml";
    let mimetype = if image {
        item.mimetype.clone()
    } else {
        "application/octet-stream".to_string()
    };
    let disposition = if image { "inline" } else { "attachment" };
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, mimetype),
            (header::CONTENT_DISPOSITION, disposition.to_string()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; sandbox".to_string(),
            ),
        ],
        ResponseBody::from(bytes),
    )
        .into_response())
}

/// The item's stored annotations, with the service, revision and component that made each.
#[utoipa::path(get, path = "/api/items/{id}/annotations", tag = "items",
    params(("id" = i64, Path, description = "the item")),
    responses((status = 200, body = Vec<Stored>), (status = 404, body = super::error::ErrorBody)))]
pub async fn annotations(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Vec<Stored>>, ApiError> {
    caller.sees_item(&state, id).await?;
    Ok(Json(
        state.run(move |home| home.item_annotations(id)).await?,
    ))
}

/// A person's review of an annotation: `{"state": "accepted"}`, `{"state": "rejected"}`, or a
/// new `label` and/or `geometry` (which makes it `edited`); `by` names the reviewer. A later
/// run of the service never replaces or deletes a reviewed annotation.
#[utoipa::path(patch, path = "/api/annotations/{id}", tag = "items",
    params(("id" = i64, Path, description = "the annotation")), request_body = Change,
    responses((status = 200, body = Stored), (status = 400, body = super::error::ErrorBody),
              (status = 404, body = super::error::ErrorBody)))]
pub async fn review(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Body(mut change): Body<Change>,
) -> Result<Json<Stored>, ApiError> {
    caller.annotation(&state, id).await?;
    change.by = caller.by(change.by);
    Ok(Json(state.run(move |home| home.review(id, &change)).await?))
}

/// Draws an annotation no service made (`manual`).
#[utoipa::path(post, path = "/api/items/{id}/annotations", tag = "items",
    params(("id" = i64, Path, description = "the item")), request_body = Manual,
    responses((status = 200, body = Stored), (status = 400, body = super::error::ErrorBody),
              (status = 404, body = super::error::ErrorBody)))]
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Body(mut manual): Body<Manual>,
) -> Result<Json<Stored>, ApiError> {
    caller.sees_item(&state, id).await?;
    manual.by = caller.by(manual.by);
    Ok(Json(
        state
            .run(move |home| home.add_annotation(id, &manual))
            .await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// `coco`, `dataloop` (the seed platform's JSON), `cvat` (CVAT for images 1.1 XML) or
    /// `json` (default).
    #[param(value_type = Option<String>)]
    format: Option<Format>,
    /// Only annotations a person accepted, edited or drew.
    #[serde(default)]
    accepted_only: bool,
}

/// A dataset's annotations, each with its review state, as `prelabel annotations export`.
#[utoipa::path(get, path = "/api/datasets/{dataset}/export", tag = "items",
    params(("dataset" = String, Path, description = "the dataset"), ExportQuery),
    responses((status = 200, body = Object), (status = 404, body = super::error::ErrorBody)))]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    Path(dataset): Path<String>,
    Query(query): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    caller.dataset(&dataset)?;
    let format = query.format.unwrap_or(Format::Json);
    let exported = state
        .run(move |home| home.export(&dataset, format, query.accepted_only))
        .await?;
    Ok((
        [(header::CONTENT_TYPE, exported.content_type())],
        exported.to_bytes(),
    )
        .into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ThumbnailQuery {
    /// The longer side: 320 (default, the grid) or 1600 (the item view).
    size: Option<u32>,
    /// Anything, to tell the browser's cache that the item changed (the UI sends its digest).
    #[allow(dead_code)]
    v: Option<String>,
}

/// A JPEG of the item's image, its longer side at most `size`; made once and cached.
#[utoipa::path(get, path = "/api/items/{id}/thumbnail", tag = "items",
    params(("id" = i64, Path, description = "the item"), ThumbnailQuery),
    responses((status = 200, description = "a JPEG", content_type = "image/jpeg"),
              (status = 400, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)))]
pub async fn thumbnail(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Query(query): Query<ThumbnailQuery>,
) -> Result<Response, ApiError> {
    caller.sees_item(&state, id).await?;
    let side = query.size.unwrap_or(prelabel::items::thumbnail::SIDES[0]);
    let jpeg = state.run(move |home| home.thumbnail(id, side)).await?;
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        ResponseBody::from(jpeg),
    )
        .into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EvaluateQuery {
    /// Whose boxes (default: the one service that annotated the dataset).
    service: Option<String>,
}

/// Scores a service's stored boxes on the dataset against the COCO ground-truth file in the
/// body, with COCOeval's definitions (as `prelabel evaluate`).
#[utoipa::path(post, path = "/api/datasets/{dataset}/evaluate", tag = "items",
    params(("dataset" = String, Path, description = "the dataset"), EvaluateQuery),
    request_body(content = Object, description = "a COCO ground-truth file"),
    responses((status = 200, body = prelabel::results::evaluate::Evaluation), (status = 400, body = super::error::ErrorBody),
              (status = 404, body = super::error::ErrorBody)))]
pub async fn evaluate(
    State(state): State<AppState>,
    caller: Caller,
    Path(dataset): Path<String>,
    Query(query): Query<EvaluateQuery>,
    Raw(body): Raw,
) -> Result<Json<prelabel::results::evaluate::Evaluation>, ApiError> {
    caller.dataset(&dataset)?;
    let ground_truth =
        prelabel::ground_truth::GroundTruth::parse(&body).map_err(prelabel::Error::from)?;
    let request = prelabel::results::evaluate::Request {
        dataset,
        service: query.service,
        ground_truth,
    };
    Ok(Json(state.run(move |home| home.evaluate(&request)).await?))
}
