//! CVAT's side of its automatic-annotation protocol, against `prelabel serve`: what CVAT's
//! lambda gateway (`cvat/apps/lambda_manager/views.py`, invoking through the Nuclio dashboard)
//! sends, and what it reads back.

use base64::Engine;
use reqwest::StatusCode;
use reqwest::blocking::{RequestBuilder, Response};
use serde_json::{Value, json};

use crate::support::server::*;
use crate::support::*;

/// The headers CVAT's gateway puts on every call to the dashboard.
fn nuclio(request: RequestBuilder) -> RequestBuilder {
    request
        .header("x-nuclio-project-name", "cvat")
        .header("x-nuclio-function-namespace", "nuclio")
        .header("x-nuclio-invoke-via", "domain-name")
}

fn invoke(server: &Server, function: Option<&str>, body: Value) -> Response {
    let mut request = nuclio(server.client.post(server.url("/api/function_invocations")))
        .header("x-nuclio-path", "/")
        .json(&body);
    if let Some(function) = function {
        request = request.header("x-nuclio-function-name", function);
    }
    request.send().expect("POST /api/function_invocations")
}

fn base64_of(name: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(photo(name))
}

/// `[(box, confidence)]` of CVAT's rectangles.
fn rectangles(shapes: &Value) -> Vec<([f32; 4], f32)> {
    shapes
        .as_array()
        .expect("a list")
        .iter()
        .map(|s| {
            assert_eq!(s["type"], "rectangle");
            assert_eq!(s["label"], "face");
            let p: Vec<f32> = s["points"]
                .as_array()
                .expect("points")
                .iter()
                .map(|v| v.as_f64().expect("a number") as f32)
                .collect();
            let confidence = s["confidence"]
                .as_str()
                .expect("text")
                .parse()
                .expect("a number");
            ([p[0], p[1], p[2], p[3]], confidence)
        })
        .collect()
}

fn executions_of(server: &Server, item: &str) -> Vec<Value> {
    let page = server.ok("/api/executions?dataset=cvat&limit=100");
    page["executions"]
        .as_array()
        .expect("a list")
        .iter()
        .filter(|e| e["item"] == item)
        .cloned()
        .collect()
}

#[test]
fn cvat_lists_services_as_detectors_and_gets_their_boxes() {
    let home = Home::new();
    home.seed_flow(&[]);
    let server = Server::start(&home, &[]);

    // LambdaGateway.list and .get, read the way LambdaFunction reads them.
    let functions = server.json(
        nuclio(server.client.get(server.url("/api/functions")))
            .send()
            .expect("GET"),
        StatusCode::OK,
    );
    let function = &functions["face-detector"];
    assert_eq!(function["metadata"]["name"], "face-detector");
    let annotations = &function["metadata"]["annotations"];
    assert_eq!(annotations["type"], "detector");
    let spec: Vec<Value> =
        serde_json::from_str(annotations["spec"].as_str().expect("a JSON string")).expect("spec");
    let labels: Vec<&str> = spec.iter().filter_map(|l| l["name"].as_str()).collect();
    assert_eq!(labels, ["face"], "the service's `label` input");
    assert!(function["spec"]["description"].is_string());
    assert_eq!(function["status"]["state"], "ready");
    assert_eq!(&server.ok("/api/functions/face-detector"), function);

    // A detector call: the frame as base64 and a threshold; rectangles in image pixels, the
    // seed's boxes.
    let shapes = server.json(
        invoke(
            &server,
            Some("face-detector"),
            json!({"image": base64_of("mosaic_2x2.png"), "threshold": 0.5}),
        ),
        StatusCode::OK,
    );
    assert_matches_seed("mosaic_2x2.png", &rectangles(&shapes));
    // The same frame again, with a higher threshold: answered from the store.
    let shapes = server.json(
        invoke(
            &server,
            Some("face-detector"),
            json!({"image": base64_of("mosaic_2x2.png"), "threshold": 0.9}),
        ),
        StatusCode::OK,
    );
    let strong: Vec<f32> = rectangles(&shapes).iter().map(|r| r.1).collect();
    let want: Vec<f32> = reference("mosaic_2x2.png")
        .iter()
        .map(|r| r.confidence)
        .filter(|c| *c >= 0.9)
        .collect();
    assert_eq!(strong.len(), want.len(), "{shapes:#}");
    let items = server.ok("/api/items?dataset=cvat");
    let items = items.as_array().expect("a list");
    assert_eq!(items.len(), 1, "one item per distinct frame: {items:#?}");
    let name = items[0]["name"].as_str().expect("a name");
    assert!(name.ends_with(".png"), "{name}");
    assert_eq!(
        executions_of(&server, name).len(),
        1,
        "the trigger's execution answered both calls"
    );

    // Without a trigger, the call queues its own execution.
    home.ok(&["trigger", "delete", "faces"]);
    let shapes = server.json(
        invoke(
            &server,
            Some("face-detector"),
            json!({"image": base64_of("matplotlib_grace_hopper.jpg")}),
        ),
        StatusCode::OK,
    );
    assert_matches_seed("matplotlib_grace_hopper.jpg", &rectangles(&shapes));

    // What CVAT can get wrong, and what the detector cannot do, each named.
    let refusal = |function, image: String, status| {
        error_of(invoke(&server, function, json!({ "image": image })), status)
    };
    let error = refusal(
        Some("nope"),
        base64_of("mosaic_2x2.png"),
        StatusCode::NOT_FOUND,
    );
    assert!(error.contains("no service named `nope`"), "{error}");
    let error = refusal(None, base64_of("mosaic_2x2.png"), StatusCode::BAD_REQUEST);
    assert!(error.contains("x-nuclio-function-name"), "{error}");
    let response = invoke(
        &server,
        Some("face-detector"),
        json!({"image": "not base64!"}),
    );
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().expect("JSON");
    assert_eq!(body["field"], "image", "{body}");
    let text = base64::engine::general_purpose::STANDARD.encode(b"not an image at all\n");
    let error = refusal(
        Some("face-detector"),
        text,
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    assert!(error.contains("ended failed"), "{error}");
    home.ok(&["service", "pause", "face-detector"]);
    let error = refusal(
        Some("face-detector"),
        base64_of("skimage_astronaut.png"),
        StatusCode::CONFLICT,
    );
    assert!(error.contains("paused"), "{error}");
    assert_eq!(
        server.ok("/api/functions/face-detector")["status"]["state"],
        "paused"
    );
}

/// The elements of an XML document: (name, attributes) in document order, and the text inside
/// each `attribute` element, read with quick-xml as CVAT's importer would parse the file.
fn elements(xml: &str) -> Vec<(String, std::collections::BTreeMap<String, String>)> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = Vec::new();
    loop {
        match reader.read_event().expect("well-formed XML") {
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => {
                let attributes: std::collections::BTreeMap<String, String> = e
                    .attributes()
                    .map(|a| {
                        let a = a.expect("an attribute");
                        let value = quick_xml::escape::unescape(&a.value).expect("escaped");
                        (a.key.0.to_string(), value.into_owned())
                    })
                    .collect();
                out.push((e.name().0.to_string(), attributes));
            }
            quick_xml::events::Event::Text(t) => {
                if let Some(last) = out.last_mut() {
                    let raw = t.xml_content(quick_xml::XmlVersion::Implicit1_0);
                    let text = quick_xml::escape::unescape(&raw)
                        .expect("escaped")
                        .into_owned();
                    if !text.trim().is_empty() {
                        last.1.insert("#text".into(), text);
                    }
                }
            }
            quick_xml::events::Event::Eof => return out,
            _ => {}
        }
    }
}

#[test]
fn the_cvat_export_is_cvat_for_images_with_the_review_state() {
    let home = Home::new();
    home.seed_flow(&[]);
    let images = fixtures().join("images");
    home.ok(&[
        "upload",
        path(&images.join("mosaic_2x2.png")),
        path(&images.join("skimage_coffee.png")),
        "--dataset",
        "photos",
    ]);
    home.ok(&["work", "--until-idle"]);
    let json = home.export("photos");
    let mosaic = json
        .as_array()
        .expect("a list")
        .iter()
        .find(|e| e["item"]["name"] == "mosaic_2x2.png")
        .expect("the mosaic");
    let first = mosaic["annotations"][0]["id"]
        .as_i64()
        .expect("an id")
        .to_string();
    home.ok(&["annotations", "review", &first, "--reject"]);

    let xml = home.ok(&[
        "annotations",
        "export",
        "--dataset",
        "photos",
        "--format",
        "cvat",
    ]);
    let all = elements(&xml);
    assert_eq!(all[0].0, "annotations");
    assert_eq!(
        all[1],
        (
            "version".to_string(),
            [("#text".to_string(), "1.1".to_string())].into()
        )
    );
    let labels: Vec<&str> = all
        .windows(2)
        .filter(|w| w[0].0 == "label" && w[1].0 == "name")
        .filter_map(|w| w[1].1.get("#text").map(String::as_str))
        .collect();
    assert_eq!(labels, ["face"]);
    let images: Vec<_> = all.iter().filter(|(name, _)| name == "image").collect();
    assert_eq!(images.len(), 2, "{xml}");
    assert_eq!(images[0].1["name"], "mosaic_2x2.png");
    assert_eq!(images[0].1["width"], "1024");
    let boxes: Vec<_> = all.iter().filter(|(name, _)| name == "box").collect();
    assert_eq!(boxes.len(), 3, "the coffee has none: {xml}");
    for (b, a) in boxes
        .iter()
        .zip(mosaic["annotations"].as_array().expect("a list"))
    {
        assert_eq!(b.1["label"], "face");
        assert_eq!(b.1["source"], "auto");
        let xtl: f64 = b.1["xtl"].parse().expect("a number");
        assert!((xtl - a["geometry"]["left"].as_f64().expect("left")).abs() < 0.01);
    }
    let reviews: Vec<&str> = all
        .iter()
        .filter(|(name, a)| name == "attribute" && a.get("name").is_some_and(|n| n == "review"))
        .filter_map(|(_, a)| a.get("#text").map(String::as_str))
        .collect();
    assert_eq!(reviews, ["rejected", "pending", "pending"]);

    let kept = home.ok(&[
        "annotations",
        "export",
        "--dataset",
        "photos",
        "--format",
        "cvat",
        "--accepted-only",
    ]);
    assert_eq!(
        elements(&kept).iter().filter(|(n, _)| n == "box").count(),
        0
    );

    let server = Server::start(&home, &[]);
    let response = server.get("/api/datasets/photos/export?format=cvat");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("application/xml")
    );
    assert_eq!(response.text().expect("text"), xml);
}
