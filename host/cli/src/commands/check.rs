//! `prelabel check`: SQLite's integrity check and every blob on disk.

use std::process::ExitCode;

use anyhow::Result;

use prelabel::ops::Home;

pub fn run(home: &Home) -> Result<ExitCode> {
    let problems = home.check()?;
    for p in &problems {
        println!("{p}");
    }
    if problems.is_empty() {
        println!("ok");
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}
