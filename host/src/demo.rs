//! `prelabel demo`: the seed tutorial's whole flow on the sample photos, on one machine.
//! Push the face-detector package, deploy it as a service, create a trigger for images,
//! upload the photos (and one text file the filter skips), run the queue until idle, then
//! print what was found, draw the boxes and export the annotations.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};
use image::{Rgb, RgbImage};

use prelabel::annotation::Geometry;
use prelabel::export::{self, Format};
use prelabel::named::Named;
use prelabel::runtime::Runtime;
use prelabel::store::Store;
use prelabel::workspace::Workspace;
use prelabel::{execution, item, revision, scheduler, service, trigger};

const PACKAGE: &str = "face-detector";
const DATASET: &str = "samples";

pub fn run(runtime: Runtime, out: &Path) -> Result<()> {
    let workspace = Workspace::find()?;
    eprintln!("[1/7] building the {PACKAGE} component (wasm32-wasip2)");
    workspace.build_guest(PACKAGE)?;

    // A fresh store each time, so every run shows the whole flow.
    let home = out.join("home");
    if home.exists() {
        std::fs::remove_dir_all(&home)
            .with_context(|| format!("cannot reset {}", home.display()))?;
    }
    let mut store = Store::open(&home)?;

    let revision = revision::push(
        &mut store,
        &runtime,
        &workspace.package_dir(PACKAGE),
        Some(&workspace.root),
    )?;
    eprintln!(
        "[2/7] pushed package {} revision {} (component sha256:{:.12})",
        revision.package, revision.revision, revision.component_digest
    );

    let deploy = service::Deploy {
        package: PACKAGE.into(),
        name: PACKAGE.into(),
        init: vec!["min_confidence=0.5".into()],
        concurrency: Some(1),
        ..Default::default()
    };
    let (svc, _) = service::deploy(&mut store, &deploy)?;
    eprintln!(
        "[3/7] deployed service {} (concurrency {}, min_confidence 0.5)",
        svc.name, svc.settings.concurrency
    );

    trigger::create(
        &mut store,
        &trigger::Create {
            name: PACKAGE.into(),
            service: PACKAGE.into(),
            function: "detect".into(),
            actions: vec![trigger::Action::Created],
            dataset: None,
            filters: vec!["metadata.system.mimetype=image/*".into()],
            mode: trigger::Mode::Once,
        },
    )?;
    eprintln!(
        "[4/7] created trigger {PACKAGE}: on created items with metadata.system.mimetype=image/*"
    );

    let mut files: Vec<PathBuf> = std::fs::read_dir(workspace.samples_dir())
        .context("the sample photos (tests/fixtures/images)")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    files.push(workspace.root.join("tests/fixtures/PROVENANCE.md"));
    let mut queued = 0;
    for path in &files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        queued += item::upload(&mut store, DATASET, &name, &bytes)?.2;
    }
    eprintln!(
        "[5/7] uploaded {} files to dataset {DATASET}: {queued} executions queued (the text file matched no trigger)",
        files.len()
    );

    eprintln!("[6/7] running the queue until idle");
    scheduler::run(
        &home,
        Arc::new(runtime),
        Arc::new(AtomicBool::new(false)),
        true,
    )?;

    println!(
        "{:<30} {:>10} {:<9} {:>6} {:>8}  confidences",
        "item", "size", "execution", "faces", "ms"
    );
    let executions = execution::list(&store, None)?;
    for (item, annotations) in export::annotated_items(&store, DATASET)? {
        let size = item
            .size_px()
            .map(|(w, h)| format!("{w}x{h}"))
            .unwrap_or_else(|| "-".into());
        let last = executions.iter().rev().find(|e| e.item_id == item.id);
        let confidences: Vec<String> = annotations
            .iter()
            .map(|a| format!("{:.3}", a.annotation.model.confidence))
            .collect();
        println!(
            "{:<30} {:>10} {:<9} {:>6} {:>8}  {}",
            item.name,
            size,
            last.map_or("skipped", |e| e.status.name()),
            if last.is_some() {
                annotations.len().to_string()
            } else {
                "-".into()
            },
            last.and_then(|e| e.duration_ms)
                .map(|d| d.to_string())
                .unwrap_or_default(),
            last.and_then(|e| e.error.clone())
                .unwrap_or_else(|| confidences.join(" "))
        );
        if last.is_some() {
            let boxes: Vec<[f32; 4]> = annotations
                .iter()
                .filter_map(|a| match a.annotation.geometry {
                    Geometry::Box {
                        left,
                        top,
                        right,
                        bottom,
                    } => Some([left, top, right, bottom]),
                    _ => None,
                })
                .collect();
            draw(
                &store.read_blob(&item.digest)?,
                &boxes,
                &out.join(format!("{}.png", stem(&item.name))),
            )?;
        }
    }

    eprintln!("[7/7] exporting annotations");
    for (format, file) in [
        (Format::Coco, "annotations.coco.json"),
        (Format::Dataloop, "annotations.dataloop.json"),
    ] {
        let path = out.join(file);
        std::fs::write(
            &path,
            serde_json::to_vec_pretty(&export::export(&store, DATASET, format)?)?,
        )
        .with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!("\nPhotos with boxes:  {}", out.display());
    println!(
        "COCO annotations:   {}",
        out.join("annotations.coco.json").display()
    );
    println!(
        "Seed-format JSON:   {}",
        out.join("annotations.dataloop.json").display()
    );
    println!(
        "The store:          {} (try: prelabel --home {} executions list)",
        home.display(),
        home.display()
    );
    Ok(())
}

fn stem(name: &str) -> &str {
    name.rsplit_once('.').map_or(name, |(s, _)| s)
}

/// Writes the image with a green outline around each box.
fn draw(bytes: &[u8], boxes: &[[f32; 4]], target: &Path) -> Result<()> {
    let mut img = image::load_from_memory(bytes)
        .context("cannot decode an annotated item")?
        .into_rgb8();
    let thickness = (img.width().max(img.height()) / 300).max(2);
    for b in boxes {
        outline(&mut img, *b, thickness, Rgb([0, 230, 64]));
    }
    img.save(target)
        .with_context(|| format!("cannot write {}", target.display()))
}

fn outline(img: &mut RgbImage, b: [f32; 4], thickness: u32, color: Rgb<u8>) {
    let (w, h) = img.dimensions();
    let [l, t, r, bo] = b.map(|v| v.max(0.0) as u32);
    let (r, bo) = (r.min(w.saturating_sub(1)), bo.min(h.saturating_sub(1)));
    for y in t..=bo {
        for x in l..=r {
            if x < l + thickness || x + thickness > r || y < t + thickness || y + thickness > bo {
                img.put_pixel(x, y, color);
            }
        }
    }
}
