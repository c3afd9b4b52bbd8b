//! `prelabel bench`: builds the components, then prints the performance table. The
//! measures live in the dev crate (`prelabel_dev::bench`), apart from the product's library.

use std::process::ExitCode;

use anyhow::Result;

use prelabel::ops::Home;
use prelabel_dev::bench as measure;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Repetitions per measure.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Only this group of rows (load, detect, host, platform, jobs, seed, idle, memory,
    /// python, scale, clients).
    #[arg(long)]
    only: Option<String>,
    /// How long the `clients` group's sixteen clients run, on each store.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    seconds: u64,
}

impl Args {
    pub fn run(self, home: &Home) -> Result<ExitCode> {
        let runs = self.runs;
        let workspace = prelabel::package::workspace::Workspace::find()?;
        eprintln!("building the face-detector and no-op components...");
        workspace.build_guest("face-detector")?;
        workspace.build_guest("hostile-guest")?;
        let options = measure::Options {
            face_detector: workspace.package_dir("face-detector"),
            python_face_detector: workspace.root.join("guest/python-face-detector"),
            noop: workspace.root.join("tests/guests/hostile"),
            image: workspace.samples_dir().join("skimage_rocket.jpg"),
            samples: workspace.samples_dir(),
            runs,
            scratch: home.dir().join("bench"),
            only: self.only,
            seconds: std::time::Duration::from_secs(self.seconds),
        };
        eprintln!("measuring ({runs} runs each; this takes a minute)...");
        let rows = measure::run(&options)?;
        // Tables from different machines are not comparable: say which this is.
        println!("cpu: {}", prelabel::runtime::vector_state::cpu());
        print!("{}", measure::render(&rows));
        Ok(ExitCode::SUCCESS)
    }
}
