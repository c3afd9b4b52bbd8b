//! CVAT for images 1.1 (XML): what `annotations export --format cvat` writes and CVAT's
//! "Upload annotations" reads. Boxes, points and polygons become shapes (`source="auto"` when
//! a service made them, `manual` when a person drew them), classifications become tags, each
//! with its review state and reviewer as `review` and `reviewer` attributes; `meta` lists the
//! labels and those attributes so that CVAT can match them to its own. Items that are not images are left out.

use std::collections::BTreeSet;

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

use crate::items::item::ItemRecord;
use crate::named::Named;
use crate::results::annotation::Stored;
use crate::results::annotation::{Geometry, Review};

/// The document for `items`, each with the annotations to export.
pub fn document(items: &[(ItemRecord, Vec<Stored>)]) -> String {
    let mut writer = Writer::new_with_indent(Vec::new(), b' ', 2);
    // Writing into a Vec cannot fail: every `write_event` below is infallible here.
    let mut put = |event: Event<'_>| {
        let _ = writer.write_event(event);
    };
    put(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)));
    put(Event::Start(BytesStart::new("annotations")));
    text(&mut put, "version", "1.1");

    meta(&mut put, items);

    let images = items
        .iter()
        .filter_map(|(item, stored)| Some((item, stored, item.size_px()?)));
    for (id, (item, stored, (width, height))) in images.enumerate() {
        let image = BytesStart::new("image").with_attributes([
            ("id", id.to_string().as_str()),
            ("name", item.name.as_str()),
            ("width", width.to_string().as_str()),
            ("height", height.to_string().as_str()),
        ]);
        if stored.is_empty() {
            put(Event::Empty(image));
            continue;
        }
        put(Event::Start(image));
        for s in stored.iter() {
            let (name, element) = shape(s);
            put(Event::Start(element));
            put(Event::Start(
                BytesStart::new("attribute").with_attributes([("name", "review")]),
            ));
            put(Event::Text(BytesText::new(s.review.name())));
            put(Event::End(BytesEnd::new("attribute")));
            put(Event::Start(
                BytesStart::new("attribute").with_attributes([("name", "reviewer")]),
            ));
            put(Event::Text(BytesText::new(
                s.reviewed_by.as_deref().unwrap_or_default(),
            )));
            put(Event::End(BytesEnd::new("attribute")));
            put(Event::End(BytesEnd::new(name)));
        }
        put(Event::End(BytesEnd::new("image")));
    }
    put(Event::End(BytesEnd::new("annotations")));
    let mut xml = String::from_utf8(writer.into_inner()).expect("the writer writes UTF-8");
    xml.push('\n');
    xml
}

/// `meta`: each label with its two attributes, the review state and who reviewed.
fn meta(put: &mut impl FnMut(Event<'_>), items: &[(ItemRecord, Vec<Stored>)]) {
    put(Event::Start(BytesStart::new("meta")));
    put(Event::Start(BytesStart::new("task")));
    put(Event::Start(BytesStart::new("labels")));
    let labels: BTreeSet<&str> = items
        .iter()
        .flat_map(|(_, stored)| stored.iter().map(|s| s.annotation.label.as_str()))
        .collect();
    for label in labels {
        put(Event::Start(BytesStart::new("label")));
        text(put, "name", label);
        text(put, "type", "any");
        put(Event::Start(BytesStart::new("attributes")));
        put(Event::Start(BytesStart::new("attribute")));
        text(put, "name", "review");
        text(put, "mutable", "True");
        text(put, "input_type", "select");
        text(put, "default_value", "pending");
        let states: Vec<&str> = Review::NAMES.iter().map(|(_, name)| *name).collect();
        text(put, "values", &states.join("\n"));
        put(Event::End(BytesEnd::new("attribute")));
        // Who reviewed it (the account, or what the reviewer typed), empty while pending.
        put(Event::Start(BytesStart::new("attribute")));
        text(put, "name", "reviewer");
        text(put, "mutable", "True");
        text(put, "input_type", "text");
        text(put, "default_value", "");
        text(put, "values", "");
        put(Event::End(BytesEnd::new("attribute")));
        put(Event::End(BytesEnd::new("attributes")));
        put(Event::End(BytesEnd::new("label")));
    }
    put(Event::End(BytesEnd::new("labels")));
    put(Event::End(BytesEnd::new("task")));
    put(Event::End(BytesEnd::new("meta")));
}

fn text(put: &mut impl FnMut(Event<'_>), name: &str, value: &str) {
    put(Event::Start(BytesStart::new(name)));
    put(Event::Text(BytesText::new(value)));
    put(Event::End(BytesEnd::new(name)));
}

/// One annotation as a CVAT element's name and start tag with its attributes (quick-xml
/// escapes the values).
fn shape(s: &Stored) -> (&'static str, BytesStart<'static>) {
    let a = &s.annotation;
    let source = if s.service.is_some() {
        "auto"
    } else {
        "manual"
    };
    let xy = |x: f32, y: f32| format!("{x:.2},{y:.2}");
    let (name, geometry): (&str, Vec<(&str, String)>) = match &a.geometry {
        Geometry::Box {
            left,
            top,
            right,
            bottom,
        } => (
            "box",
            vec![
                ("xtl", format!("{left:.2}")),
                ("ytl", format!("{top:.2}")),
                ("xbr", format!("{right:.2}")),
                ("ybr", format!("{bottom:.2}")),
            ],
        ),
        Geometry::Point { x, y } => ("points", vec![("points", xy(*x, *y))]),
        Geometry::Polygon { points } => (
            "polygon",
            vec![(
                "points",
                points
                    .iter()
                    .map(|[x, y]| xy(*x, *y))
                    .collect::<Vec<_>>()
                    .join(";"),
            )],
        ),
        Geometry::Classification => ("tag", vec![]),
    };
    let mut element = BytesStart::new(name);
    element.push_attribute(("label", a.label.as_str()));
    element.push_attribute(("source", source));
    if name != "tag" {
        element.push_attribute(("occluded", "0"));
        for (key, value) in &geometry {
            element.push_attribute((*key, value.as_str()));
        }
        element.push_attribute(("z_order", "0"));
    }
    (name, element)
}
