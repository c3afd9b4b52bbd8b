//! Label Studio: what Prelabel needs to be its ML backend (`api/labelstudio.rs` serves the
//! protocol) and to write tasks it imports. A project's label config names the box control
//! (`RectangleLabels`: its `name`, the `Image` it points at and that image's `$key` in a
//! task's data) and its labels; a service's label maps onto one of them. Boxes go to Label
//! Studio in percent of the image, with the original size and the confidence as `score`.

mod server;

pub use server::{Server, ServerError, TaskError, dataset, image_url, item_name};

use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use serde_json::Value;

use crate::results::annotation::Stored;
use crate::results::export::labelstudio::rectangle;

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
        "the service's {} none of the project's labels ({project}): name a Label after one, \
         or give one `predicted_values=\"{}\"`",
        if labels.len() == 1 { format!("label `{}` is", labels[0]) } else { format!("labels `{}` are", labels.join("`, `")) },
        labels.first().map_or("", String::as_str)
    )]
    Unmapped {
        labels: Vec<String>,
        project: String,
    },
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
    /// it, else the one with its value (case aside), else, for a service that gives one label
    /// only (`single`), the only Label there is.
    pub fn map(&self, label: &str, single: bool) -> Option<&str> {
        let same = |a: &str| a.eq_ignore_ascii_case(label);
        self.labels
            .iter()
            .find(|l| l.predicted_values.iter().any(|p| same(p)))
            .or_else(|| self.labels.iter().find(|l| same(&l.value)))
            .or(match self.labels.as_slice() {
                [only] if single => Some(only),
                _ => None,
            })
            .map(|l| l.value.as_str())
    }

    /// How a service's labels meet the project's: each matched one with its project label,
    /// then those that have no place (their boxes are left out of predictions). Refused when
    /// none has a place: the project could take none of the service's boxes.
    pub fn matching(&self, labels: &[String]) -> Result<Matching, ConfigError> {
        let single = labels.len() <= 1;
        let mut matching = Matching::default();
        for label in labels {
            match self.map(label, single) {
                Some(project) => matching.matched.push((label.clone(), project.to_string())),
                None => matching.unmatched.push(label.clone()),
            }
        }
        if matching.matched.is_empty() && !matching.unmatched.is_empty() {
            return Err(ConfigError::Unmapped {
                labels: matching.unmatched,
                project: self
                    .labels
                    .iter()
                    .map(|l| l.value.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(matching)
    }

    /// An item's boxes as the results of one prediction, labelled with the project's labels;
    /// a box whose label has no place in the project is left out. `single`: the service gives
    /// one label only.
    pub fn results(&self, boxes: &[Stored], width: u32, height: u32, single: bool) -> Vec<Value> {
        let names = (self.from_name.as_str(), self.to_name.as_str());
        boxes
            .iter()
            .filter_map(|stored| {
                let label = self.map(&stored.annotation.label, single)?;
                rectangle(names, stored, label, width, height)
            })
            .collect()
    }
}

/// A service's labels against a project's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Matching {
    /// (the service's label, the project's).
    pub matched: Vec<(String, String)>,
    pub unmatched: Vec<String>,
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(config.map("face", false), Some("Face"));
        assert_eq!(config.map("person", false), Some("Face"));
        assert_eq!(config.map("CAR", false), Some("Car"));
        assert_eq!(config.map("dog", false), None);
        let labels = ["face", "dog", "car"].map(String::from);
        let matching = config.matching(&labels).expect("two have a place");
        assert_eq!(
            matching.matched,
            [("face", "Face"), ("car", "Car")].map(|(a, b)| (a.to_string(), b.to_string()))
        );
        assert_eq!(matching.unmatched, ["dog"]);
        let error = config
            .matching(&["dog".into(), "cat".into()])
            .expect_err("none has a place");
        assert!(
            error.to_string().starts_with(
                "the service's labels `dog`, `cat` are none of the project's labels (Face, Car)"
            ),
            "{error}"
        );
    }

    #[test]
    fn one_label_takes_a_single_label_service_s_label() {
        let config = Config::parse(
            r#"<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image"><Label value="Person"/></RectangleLabels></View>"#,
        )
        .expect("parses");
        assert_eq!(config.map("face", true), Some("Person"));
        // A service of many classes does not pour them all into the one Label.
        assert_eq!(config.map("face", false), None);
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
}
