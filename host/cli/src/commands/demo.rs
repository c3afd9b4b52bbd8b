//! `prelabel demo`: the seed tutorial's whole flow on the sample photos, on one machine.
//! Push the face-detector package, deploy it as a service, create a trigger for images,
//! upload the photos (and one text file the filter skips), run the queue until idle, then
//! print what was found, draw the boxes and export the annotations. Then the seed's "before
//! annotation tasks": the privacy pipeline (faces, an anonymized copy of each photo with one,
//! the uncertain ones held for review) on the same photos, and where to look.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};

use prelabel::items::item::ItemRecord;
use prelabel::named::Named;
use prelabel::ops::Home;
use prelabel::package::pipeline::Spec;
use prelabel::package::workspace::Workspace;
use prelabel::results::annotation::Stored;
use prelabel::results::export::Format;
use prelabel::work::execution::Execution;
use prelabel::{catalog::service, work::trigger};

const PACKAGE: &str = "face-detector";
const DATASET: &str = "samples";
const ANONYMIZER: &str = "anonymizer";
/// The privacy pipeline's file, and the dataset its source takes.
const PIPELINE: &str = "tests/fixtures/pipelines/privacy.toml";
const PHOTOS: &str = "photos";
const STEPS: usize = 8;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write the annotated photos and the exports (default: HOME/demo).
    #[arg(long)]
    out: Option<PathBuf>,
}

impl Args {
    pub fn run(self, home: &Home) -> Result<ExitCode> {
        let out = self.out.unwrap_or_else(|| home.dir().join("demo"));
        let workspace = Workspace::find()?;
        eprintln!("[1/{STEPS}] building the {PACKAGE} and {ANONYMIZER} components (wasm32-wasip2)");
        workspace.build_guest(PACKAGE)?;
        workspace.build_guest(ANONYMIZER)?;
        // A fresh store each time, so every run shows the whole flow; the compile cache is
        // the user's home's, so a second run does not compile again.
        let demo = out.join("home");
        if demo.exists() {
            std::fs::remove_dir_all(&demo)
                .with_context(|| format!("cannot reset {}", demo.display()))?;
        }
        let demo = Home::new(demo, Some(home.cache_dir().to_path_buf()));
        set_up(&demo, &workspace)?;
        upload(&demo, &workspace)?;
        eprintln!("[6/{STEPS}] running the queue until idle");
        demo.serve(Arc::new(AtomicBool::new(false)), true)?;
        report(&demo, &out)?;
        export(&demo, &out)?;
        privacy(&demo, &workspace, &out)?;
        Ok(ExitCode::SUCCESS)
    }
}

/// Steps 2 to 4: push the package, deploy it, trigger it on images.
fn set_up(home: &Home, workspace: &Workspace) -> Result<()> {
    let revision = home.push(&workspace.package_dir(PACKAGE), Some(&workspace.root))?;
    eprintln!(
        "[2/{STEPS}] pushed package {} revision {} (component sha256:{:.12})",
        revision.package, revision.revision, revision.component_digest
    );
    let deployed = home.deploy(&service::Deploy {
        package: PACKAGE.into(),
        name: PACKAGE.into(),
        init: vec!["min_confidence=0.5".into()],
        // Every core: one initialised instance per core works through the photos.
        concurrency: Some(
            std::thread::available_parallelism().map_or(1, |n| n.get().min(64)) as u32,
        ),
        ..Default::default()
    })?;
    eprintln!(
        "[3/{STEPS}] deployed service {} (concurrency {}, min_confidence 0.5)",
        deployed.service.name, deployed.service.settings.concurrency
    );
    home.create_trigger(&trigger::Create {
        name: PACKAGE.into(),
        service: PACKAGE.into(),
        function: "detect".into(),
        actions: vec![trigger::Action::Created],
        // The samples only: the privacy pipeline runs the detector on its own photos.
        dataset: Some(DATASET.into()),
        filters: vec!["metadata.system.mimetype=image/*".into()],
        mode: trigger::Mode::Once,
    })?;
    eprintln!(
        "[4/{STEPS}] created trigger {PACKAGE}: on created items of {DATASET} with metadata.system.mimetype=image/*"
    );
    Ok(())
}

/// The sample photos, sorted.
fn samples(workspace: &Workspace) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(workspace.samples_dir())
        .context("the sample photos (tests/fixtures/images)")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    Ok(files)
}

/// Step 5: the sample photos, and a text file that no trigger matches.
fn upload(home: &Home, workspace: &Workspace) -> Result<()> {
    let mut files = samples(workspace)?;
    files.push(workspace.root.join("tests/fixtures/PROVENANCE.md"));
    let queued = upload_into(home, DATASET, &files)?;
    eprintln!(
        "[5/{STEPS}] uploaded {} files to dataset {DATASET}: {queued} executions queued (the text file matched no trigger)",
        files.len()
    );
    Ok(())
}

/// Uploads `files` into `dataset`; returns how many executions that queued.
fn upload_into(home: &Home, dataset: &str, files: &[PathBuf]) -> Result<usize> {
    let mut queued = 0;
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        queued += home.upload(dataset, &name, &bytes)?.queued;
    }
    Ok(queued)
}

/// A line per item (faces, time, confidences), and each annotated photo drawn with its boxes.
fn report(home: &Home, out: &Path) -> Result<()> {
    println!(
        "{:<30} {:>10} {:<9} {:>6} {:>8}  confidences",
        "item", "size", "execution", "faces", "ms"
    );
    let executions = home.executions(None)?;
    for (item, annotations) in home.annotated_items(DATASET)? {
        let last = executions.iter().rev().find(|e| e.item_id == item.id);
        println!("{}", line(&item, last, &annotations));
        if last.is_some() {
            let (_, bytes) = home.item_bytes(item.id)?;
            draw(
                &bytes,
                &annotations,
                &out.join(format!("{}.png", stem(&item.name))),
            )?;
        }
    }
    Ok(())
}

fn line(item: &ItemRecord, last: Option<&Execution>, annotations: &[Stored]) -> String {
    let size = item
        .size_px()
        .map(|(w, h)| format!("{w}x{h}"))
        .unwrap_or_else(|| "-".into());
    let confidences: Vec<String> = annotations
        .iter()
        .map(|a| format!("{:.3}", a.annotation.model.confidence))
        .collect();
    format!(
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
    )
}

/// Step 7: the dataset's annotations as COCO and as the seed's JSON, and where to look.
fn export(home: &Home, out: &Path) -> Result<()> {
    eprintln!("[7/{STEPS}] exporting annotations");
    for (format, file) in [
        (Format::Coco, "annotations.coco.json"),
        (Format::Dataloop, "annotations.dataloop.json"),
        (Format::Cvat, "annotations.cvat.xml"),
    ] {
        let path = out.join(file);
        std::fs::write(&path, home.export(DATASET, format, false)?.to_bytes())
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
        "CVAT XML:           {}",
        out.join("annotations.cvat.xml").display()
    );
    println!(
        "The store:          {} (try: prelabel --home {} executions list)",
        home.dir().display(),
        home.dir().display()
    );
    println!(
        "Review the boxes:   prelabel --home {} serve --open   (then http://127.0.0.1:8700/)",
        home.dir().display()
    );
    Ok(())
}

/// Step 8: the privacy pipeline on the same photos (uploaded again, as dataset `photos`), run
/// until idle; the anonymized copies written out, and where to see the rest.
fn privacy(home: &Home, workspace: &Workspace, out: &Path) -> Result<()> {
    home.push(&workspace.package_dir(ANONYMIZER), Some(&workspace.root))?;
    home.deploy(&service::Deploy {
        package: ANONYMIZER.into(),
        name: ANONYMIZER.into(),
        ..Default::default()
    })?;
    let spec = Spec::from_file(&workspace.root.join(PIPELINE))?;
    home.apply_pipeline(&spec)?;
    let queued = upload_into(home, PHOTOS, &samples(workspace)?)?;
    eprintln!(
        "[8/{STEPS}] the privacy pipeline ({PIPELINE}): photos uploaded to {PHOTOS}, {queued} executions queued; running until idle"
    );
    home.serve(Arc::new(AtomicBool::new(false)), true)?;
    let copies = out.join("anonymized");
    std::fs::create_dir_all(&copies)
        .with_context(|| format!("cannot create {}", copies.display()))?;
    let anonymized = home.items(Some("anonymized"))?;
    for item in &anonymized {
        let (_, bytes) = home.item_bytes(item.id)?;
        let path = copies.join(&item.name);
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let waiting = home.task("uncertain-faces")?.waiting;
    println!(
        "Anonymized copies:  {} ({} photos with faces)",
        copies.display(),
        anonymized.len()
    );
    println!(
        "Waiting for review: {waiting} photos with an uncertain face, in task uncertain-faces \
         (serve --open, then Tasks; completing one puts it into dataset reviewed)"
    );
    println!(
        "The pipeline:       prelabel --home {} pipeline show privacy   (or Pipelines in the UI)",
        home.dir().display()
    );
    Ok(())
}

fn stem(name: &str) -> &str {
    name.rsplit_once('.').map_or(name, |(s, _)| s)
}

/// Writes the image with each box outlined and tagged with its label and confidence.
fn draw(bytes: &[u8], annotations: &[Stored], target: &Path) -> Result<()> {
    let mut img = image::load_from_memory(bytes)
        .context("cannot decode an annotated item")?
        .into_rgb8();
    crate::overlay::draw(&mut img, annotations);
    img.save(target)
        .with_context(|| format!("cannot write {}", target.display()))
}
