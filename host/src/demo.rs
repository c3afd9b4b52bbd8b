//! `prelabel demo`: the main job for a new user. Builds the face detector component, runs it
//! sandboxed over the sample photos, prints what it found and writes the photos with boxes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use image::{Rgb, RgbImage};

use prelabel::annotation::Geometry;
use prelabel::local::{FileResult, LocalRunner};
use prelabel::package::Package;
use prelabel::runtime::{Limits, Runtime};
use prelabel::workspace::Workspace;

use crate::cli::{run_files, to_coco};

const PACKAGE: &str = "face-detector";

pub fn run(runtime: &Runtime, out: &Path) -> Result<()> {
    let workspace = Workspace::find()?;
    eprintln!("Building the {PACKAGE} component (wasm32-wasip2)...");
    workspace.build_guest(PACKAGE)?;
    let package = Package::load(&workspace.package_dir(PACKAGE))?;
    eprintln!(
        "Loading {PACKAGE} {} and initialising it once...",
        package.manifest.version
    );
    let mut runner = LocalRunner::new(runtime, &package, &BTreeMap::new(), Limits::default())?;

    let mut images: Vec<PathBuf> = std::fs::read_dir(workspace.samples_dir())
        .context("the sample photos (tests/fixtures/images)")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    images.sort();
    let results = run_files(&mut runner, &images);

    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    println!(
        "{:<30} {:>10} {:>6} {:>8}  confidences",
        "image", "size", "faces", "ms"
    );
    for (path, r) in images.iter().zip(&results) {
        let size = r
            .width
            .zip(r.height)
            .map(|(w, h)| format!("{w}x{h}"))
            .unwrap_or_default();
        let confidences: Vec<String> = r
            .annotations
            .iter()
            .map(|a| format!("{:.3}", a.model.confidence))
            .collect();
        let faces = match &r.error {
            Some(_) => "error".to_string(),
            None => r.annotations.len().to_string(),
        };
        println!(
            "{:<30} {:>10} {:>6} {:>8.1}  {}",
            r.name,
            size,
            faces,
            r.duration.as_secs_f64() * 1000.0,
            r.error.clone().unwrap_or_else(|| confidences.join(" "))
        );
        if r.error.is_none() {
            draw(path, r, out)?;
        }
    }
    let coco = out.join("annotations.coco.json");
    std::fs::write(&coco, serde_json::to_vec_pretty(&to_coco(&results))?)?;
    println!("\nPhotos with boxes: {}", out.display());
    println!("COCO annotations:  {}", coco.display());
    Ok(())
}

/// Writes `out/<stem>.png` with a green box around each face.
fn draw(path: &Path, result: &FileResult, out: &Path) -> Result<()> {
    let mut img = image::open(path)
        .with_context(|| format!("cannot open {}", path.display()))?
        .into_rgb8();
    let thickness = (img.width().max(img.height()) / 300).max(2);
    for a in &result.annotations {
        if let Geometry::Box {
            left,
            top,
            right,
            bottom,
        } = a.geometry
        {
            outline(
                &mut img,
                [left, top, right, bottom],
                thickness,
                Rgb([0, 230, 64]),
            );
        }
    }
    let stem = path
        .file_stem()
        .map_or_else(|| result.name.clone(), |s| s.to_string_lossy().into_owned());
    let target = out.join(format!("{stem}.png"));
    img.save(&target)
        .with_context(|| format!("cannot write {}", target.display()))
}

fn outline(img: &mut RgbImage, b: [f32; 4], thickness: u32, color: Rgb<u8>) {
    let (w, h) = img.dimensions();
    let [l, t, r, bo] = b.map(|v| v.max(0.0) as u32);
    let (r, bo) = (r.min(w.saturating_sub(1)), bo.min(h.saturating_sub(1)));
    for y in t..=bo {
        for x in l..=r {
            let edge =
                x < l + thickness || x + thickness > r || y < t + thickness || y + thickness > bo;
            if edge {
                img.put_pixel(x, y, color);
            }
        }
    }
}
