//! Label Studio: what Prelabel needs to be its ML backend (`api/labelstudio.rs` serves the
//! protocol) and to write tasks it imports. A project's label config names the box control
//! (`RectangleLabels`: its `name`, the `Image` it points at and that image's `$key` in a
//! task's data) and its labels; a service's label maps onto one of them. Boxes go to Label
//! Studio in percent of the image, with the original size and the confidence as `score`.

use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use reqwest::Url;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::Value;

use crate::results::annotation::Stored;
use crate::results::export::labelstudio::rectangle;
use crate::runtime::download::Grant;

/// Why a label config cannot take Prelabel's boxes, or a label has no place in it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("the label config is not XML: {reason}")]
    Xml { reason: String },
    #[error(
        "the label config has no RectangleLabels control: add one, e.g. \
         <RectangleLabels name=\"label\" toName=\"image\"><Label value=\"face\"/></RectangleLabels>"
    )]
    NoRectangles,
    #[error("the RectangleLabels control `{control}` lacks its `{attribute}` attribute")]
    Attribute {
        control: String,
        attribute: &'static str,
    },
    #[error(
        "the RectangleLabels control `{control}` points at `{to_name}`, which is no Image tag with a `$key` value"
    )]
    NoImage { control: String, to_name: String },
    #[error("the RectangleLabels control `{control}` has no Label")]
    NoLabels { control: String },
    #[error(
        "the service's label `{label}` is none of the project's labels ({labels}): name a Label \
         after it, or give one `predicted_values=\"{label}\"`"
    )]
    Unmapped { label: String, labels: String },
}

/// The part of a project's label config that boxes go to.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The RectangleLabels control's `name`: a result's `from_name`.
    pub from_name: String,
    /// The Image tag's `name`: a result's `to_name`.
    pub to_name: String,
    /// The key of a task's `data` that holds the image's URL (`$image` → `image`).
    pub data_key: String,
    pub labels: Vec<Label>,
}

/// One `<Label>` of the control: its value, and the model labels it stands for
/// (`predicted_values="a,b"`, the attribute Label Studio's own ML backends read).
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub value: String,
    pub predicted_values: Vec<String>,
}

impl Config {
    /// The first RectangleLabels control that points at an Image, with its labels. Tag and
    /// attribute names are matched without case, as Label Studio does.
    pub fn parse(xml: &str) -> Result<Config, ConfigError> {
        let mut reader = quick_xml::Reader::from_str(xml);
        let mut images: Vec<(String, String)> = Vec::new();
        // (control name, toName, labels) of each RectangleLabels, and whether one is open.
        let mut controls: Vec<(String, String, Vec<Label>)> = Vec::new();
        let mut open = false;
        loop {
            let event = reader.read_event().map_err(|e| ConfigError::Xml {
                reason: e.to_string(),
            })?;
            let (tag, empty) = match &event {
                Event::Start(tag) => (tag, false),
                Event::Empty(tag) => (tag, true),
                Event::End(end) => {
                    if end
                        .local_name()
                        .as_ref()
                        .eq_ignore_ascii_case("rectanglelabels")
                    {
                        open = false;
                    }
                    continue;
                }
                Event::Eof => break,
                _ => continue,
            };
            let name = tag.local_name();
            let name = name.as_ref();
            if name.eq_ignore_ascii_case("image") {
                if let (Some(n), Some(v)) = (attribute(tag, "name")?, attribute(tag, "value")?) {
                    images.push((n, v));
                }
            } else if name.eq_ignore_ascii_case("rectanglelabels") {
                let control = attribute(tag, "name")?.ok_or(ConfigError::Attribute {
                    control: "(unnamed)".into(),
                    attribute: "name",
                })?;
                let to_name = attribute(tag, "toName")?.ok_or_else(|| ConfigError::Attribute {
                    control: control.clone(),
                    attribute: "toName",
                })?;
                controls.push((control, to_name, Vec::new()));
                open = !empty;
            } else if open
                && name.eq_ignore_ascii_case("label")
                && let (Some(value), Some(control)) =
                    (attribute(tag, "value")?, controls.last_mut())
            {
                let predicted_values = attribute(tag, "predicted_values")?
                    .map(|v| {
                        v.split(',')
                            .map(|s| s.trim().to_string())
                            .filter(|s| !s.is_empty())
                            .collect()
                    })
                    .unwrap_or_default();
                control.2.push(Label {
                    value,
                    predicted_values,
                });
            }
        }
        first_usable(&images, controls)
    }

    /// The project's label for a service's `label`: the Label whose `predicted_values` name
    /// it, else the one with its value (case aside), else the only one there is.
    pub fn map(&self, label: &str) -> Result<&str, ConfigError> {
        let same = |a: &str| a.eq_ignore_ascii_case(label);
        self.labels
            .iter()
            .find(|l| l.predicted_values.iter().any(|p| same(p)))
            .or_else(|| self.labels.iter().find(|l| same(&l.value)))
            .or(match self.labels.as_slice() {
                [only] => Some(only),
                _ => None,
            })
            .map(|l| l.value.as_str())
            .ok_or_else(|| ConfigError::Unmapped {
                label: label.to_string(),
                labels: self
                    .labels
                    .iter()
                    .map(|l| l.value.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// An item's boxes as the results of one prediction, labelled with the project's labels.
    pub fn results(
        &self,
        boxes: &[Stored],
        width: u32,
        height: u32,
    ) -> Result<Vec<Value>, ConfigError> {
        let mut results = Vec::new();
        for stored in boxes {
            let label = self.map(&stored.annotation.label)?;
            let names = (self.from_name.as_str(), self.to_name.as_str());
            results.extend(rectangle(names, stored, label, width, height));
        }
        Ok(results)
    }
}

/// The first RectangleLabels control whose `toName` is an Image with a `$key` and which has
/// labels; else the first control's error.
fn first_usable(
    images: &[(String, String)],
    controls: Vec<(String, String, Vec<Label>)>,
) -> Result<Config, ConfigError> {
    let mut first_error = None;
    for (control, to_name, labels) in controls {
        let key = images
            .iter()
            .find(|(name, _)| *name == to_name)
            .and_then(|(_, value)| value.strip_prefix('$'));
        let error = match key {
            None => ConfigError::NoImage { control, to_name },
            Some(_) if labels.is_empty() => ConfigError::NoLabels { control },
            Some(key) => {
                return Ok(Config {
                    from_name: control,
                    to_name,
                    data_key: key.to_string(),
                    labels,
                });
            }
        };
        first_error.get_or_insert(error);
    }
    Err(first_error.unwrap_or(ConfigError::NoRectangles))
}

/// A tag's attribute, its name matched without case.
fn attribute(tag: &BytesStart<'_>, name: &str) -> Result<Option<String>, ConfigError> {
    for attr in tag.attributes() {
        let attr = attr.map_err(|e| ConfigError::Xml {
            reason: e.to_string(),
        })?;
        if attr.key.local_name().as_ref().eq_ignore_ascii_case(name) {
            let value = attr
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|e| ConfigError::Xml {
                    reason: e.to_string(),
                })?;
            return Ok(Some(value.into_owned()));
        }
    }
    Ok(None)
}

/// The Label Studio a task's images come from: its base URL and API token (the names its SDK
/// reads: `LABEL_STUDIO_URL`, `LABEL_STUDIO_API_KEY`).
#[derive(Clone)]
pub struct Server {
    pub url: Url,
    /// `Token KEY`, checked once by [`Server::new`] and marked sensitive.
    authorization: Option<HeaderValue>,
}

impl std::fmt::Debug for Server {
    // The token is a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("url", &self.url.as_str())
            .field("token", &self.authorization.as_ref().map(|_| "(set)"))
            .finish()
    }
}

/// Why a task's image cannot be fetched; each is answered for its task alone.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TaskError {
    #[error("the task has no `{key}` in its data (the image the label config's `${key}` names)")]
    NoImage { key: String },
    #[error(
        "the task's image `{url}` is a path on Label Studio: start prelabel serve with \
         LABEL_STUDIO_URL (or --label-studio-url) so that it can fetch it"
    )]
    NoServer { url: String },
    #[error("the task's image `{url}` is not a URL: {reason}")]
    Url { url: String, reason: String },
}

/// Why `serve` cannot talk to the Label Studio it was given: refused at start.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ServerError {
    #[error("LABEL_STUDIO_URL (--label-studio-url) `{url}` is not a URL: {reason}")]
    Url { url: String, reason: String },
    /// Sent as it is, it would be dropped from every request (or split one): refused instead
    /// of fetching task images without it. The value is never shown.
    #[error(
        "LABEL_STUDIO_API_KEY (--label-studio-api-key) is not a valid HTTP header value: it holds \
         a line break or another control character (copied with its newline?)"
    )]
    ApiKey,
}

impl Server {
    /// The server from a base URL and a token, checked.
    pub fn new(url: &str, token: Option<String>) -> Result<Server, ServerError> {
        let parsed = Url::parse(url).map_err(|e| ServerError::Url {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        let authorization = token
            .filter(|t| !t.is_empty())
            .map(|token| {
                let mut value = HeaderValue::from_str(&format!("Token {token}"))
                    .map_err(|_| ServerError::ApiKey)?;
                value.set_sensitive(true);
                Ok(value)
            })
            .transpose()?;
        Ok(Server {
            url: parsed,
            authorization,
        })
    }

    /// The token, for Label Studio's origin only, which is trusted (loopback included: it is
    /// the user's own server).
    fn grant(&self) -> Grant {
        let mut headers = HeaderMap::new();
        if let Some(value) = &self.authorization {
            headers.insert(AUTHORIZATION, value.clone());
        }
        Grant {
            origin: self.url.origin(),
            headers,
            trusted: true,
        }
    }
}

/// Where a task's image is, and the grant to fetch it with: a path (`/data/upload/...`) is
/// resolved against Label Studio's URL and fetched with its token; another URL is fetched
/// like any link (the token goes to Label Studio's origin only).
pub fn image_url(
    data: &Value,
    key: &str,
    server: Option<&Server>,
) -> Result<(Url, Option<Grant>), TaskError> {
    let image = data
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| TaskError::NoImage {
            key: key.to_string(),
        })?;
    let url = match (Url::parse(image), server) {
        (Ok(url), _) => url,
        (Err(url::ParseError::RelativeUrlWithoutBase), Some(server)) => {
            server.url.join(image).map_err(|e| TaskError::Url {
                url: image.to_string(),
                reason: e.to_string(),
            })?
        }
        (Err(url::ParseError::RelativeUrlWithoutBase), None) => {
            return Err(TaskError::NoServer {
                url: image.to_string(),
            });
        }
        (Err(e), _) => {
            return Err(TaskError::Url {
                url: image.to_string(),
                reason: e.to_string(),
            });
        }
    };
    Ok((url, server.map(Server::grant)))
}

/// A Label Studio project's dataset: `label-studio-<id>`, from the `project` field its
/// requests carry (`<id>.<created timestamp>`).
pub fn dataset(project: &str) -> String {
    let id = project.split('.').next().unwrap_or_default();
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
        format!("label-studio-{id}")
    } else {
        "label-studio".to_string()
    }
}

/// A task's item name: `task-<id>-<the URL's file name>`, readable and one per task.
pub fn item_name(task: Option<i64>, url: &Url) -> String {
    let file = crate::items::link::file_name(url)
        .map(|name| name.replace(['/', '\\'], "_"))
        .unwrap_or_else(|| "image".into());
    match task {
        Some(id) => format!("task-{id}-{file}"),
        None => file,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FACES: &str = r#"<View>
      <Image name="img" value="$photo" zoom="true"/>
      <RectangleLabels name="faces" toName="img">
        <Label value="Face" background="red" predicted_values="face,person"/>
        <Label value="Car"/>
      </RectangleLabels>
    </View>"#;

    #[test]
    fn a_config_names_its_control_image_key_and_labels() {
        let config = Config::parse(FACES).expect("parses");
        assert_eq!(config.from_name, "faces");
        assert_eq!(config.to_name, "img");
        assert_eq!(config.data_key, "photo");
        let values: Vec<&str> = config.labels.iter().map(|l| l.value.as_str()).collect();
        assert_eq!(values, ["Face", "Car"]);
        assert_eq!(config.map("face"), Ok("Face"));
        assert_eq!(config.map("person"), Ok("Face"));
        assert_eq!(config.map("CAR"), Ok("Car"));
        assert!(matches!(
            config.map("dog"),
            Err(ConfigError::Unmapped { .. })
        ));
    }

    #[test]
    fn one_label_takes_any_service_label() {
        let config = Config::parse(
            r#"<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image"><Label value="Person"/></RectangleLabels></View>"#,
        )
        .expect("parses");
        assert_eq!(config.map("face"), Ok("Person"));
    }

    #[test]
    fn configs_without_a_place_for_boxes_are_named() {
        let cases = [
            (
                "<View><Image name=\"i\" value=\"$i\"/><Choices name=\"c\" toName=\"i\"><Choice value=\"a\"/></Choices></View>",
                "no RectangleLabels",
            ),
            (
                "<View><RectangleLabels name=\"l\" toName=\"x\"><Label value=\"a\"/></RectangleLabels></View>",
                "points at `x`",
            ),
            (
                "<View><Image name=\"i\" value=\"$i\"/><RectangleLabels name=\"l\" toName=\"i\"></RectangleLabels></View>",
                "has no Label",
            ),
            (
                "<View><RectangleLabels toName=\"i\"/></View>",
                "lacks its `name`",
            ),
            ("<View><Image name=\"i\" value=\"$i\"></View>", "not XML"),
        ];
        for (xml, want) in cases {
            let error = Config::parse(xml).expect_err(xml).to_string();
            assert!(error.contains(want), "{xml}: {error}");
        }
    }

    #[test]
    fn an_api_key_that_cannot_be_a_header_is_refused_unseen() {
        for bad in ["abc\ndef", "abc\r", "a\u{7f}b"] {
            let error = Server::new("http://127.0.0.1:8080", Some(bad.into()));
            let error = error.expect_err(bad).to_string();
            assert!(error.starts_with("LABEL_STUDIO_API_KEY"), "{error}");
            assert!(!error.contains("abc"), "{error}");
        }
        let error = Server::new("not a url", None)
            .expect_err("a URL")
            .to_string();
        assert!(error.starts_with("LABEL_STUDIO_URL"), "{error}");
        assert!(Server::new("http://ls:8080", Some(String::new())).is_ok());
    }

    #[test]
    fn image_urls_resolve_against_label_studio_with_its_token_for_its_origin_only() {
        let server = Server::new("http://127.0.0.1:8080", Some("secret".into())).expect("a URL");
        let data = json!({"image": "/data/upload/3/ab12cd34-face.jpg", "other": "https://example.com/b.jpg"});
        let (url, grant) = image_url(&data, "image", Some(&server)).expect("resolves");
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8080/data/upload/3/ab12cd34-face.jpg"
        );
        let grant = grant.expect("a grant");
        assert!(grant.trusted);
        assert_eq!(grant.origin, url.origin());
        assert_eq!(grant.headers[AUTHORIZATION], "Token secret");
        assert!(!format!("{grant:?}").contains("secret"));
        assert!(!format!("{server:?}").contains("secret"));
        let (other, grant) = image_url(&data, "other", Some(&server)).expect("resolves");
        assert_ne!(grant.expect("a grant").origin, other.origin());
        assert!(matches!(
            image_url(&data, "image", None),
            Err(TaskError::NoServer { .. })
        ));
        assert!(matches!(
            image_url(&data, "missing", Some(&server)),
            Err(TaskError::NoImage { .. })
        ));
        assert_eq!(dataset("12.1700000000"), "label-studio-12");
        assert_eq!(item_name(Some(7), &url), "task-7-ab12cd34-face.jpg");
    }
}
