//! `prelabel backup` and `restore` (issue 33): a backup taken while `serve` takes uploads and
//! annotates restores to a home that `check` finds whole and that holds everything committed
//! before the backup began; a second backup copies only new blobs; bad folders are refused.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use reqwest::StatusCode;

use crate::support::server::{Server, photo};
use crate::support::{Home, command, path, stdout, tempdir};

/// The rows of `table` with ids up to `last`.
fn rows_up_to(home: &Home, table: &str, last: i64) -> i64 {
    home.count(&format!("SELECT COUNT(*) FROM {table} WHERE id <= {last}"))
}

fn last_id(home: &Home, table: &str) -> i64 {
    home.count(&format!(
        "SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM {table}"
    ))
}

/// `prelabel check` on a backup folder, which is a home of its own (always SQLite).
fn check_backup(dir: &std::path::Path) -> String {
    let out = command(dir)
        .env_remove("PRELABEL_STORE")
        .arg("check")
        .output()
        .expect("check runs");
    assert!(out.status.success(), "check: {}", stdout(&out));
    stdout(&out)
}

/// The blobs a backup's output says it copied.
fn blobs_copied(output: &str) -> usize {
    output
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("blobs")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no blob count in: {output}"))
}

#[test]
fn a_backup_taken_while_serving_restores_all_committed_before_it() {
    let home = Home::new();
    home.seed_flow(&[]);
    let server = Server::start(&home, &[]);
    let photos: Vec<(&str, Vec<u8>)> = ["skimage_astronaut.png", "matplotlib_grace_hopper.jpg"]
        .into_iter()
        .map(|name| (name, photo(name)))
        .collect();
    let (stop, uploads) = (AtomicBool::new(false), AtomicUsize::new(0));
    let backup = tempdir();
    let (before, during) = std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let n = uploads.fetch_add(1, Ordering::Relaxed);
                let (name, bytes) = &photos[n % photos.len()];
                let answer = server.upload("photos", &[(&format!("{n}-{name}"), bytes.clone())]);
                assert_eq!(answer.status(), StatusCode::OK);
            }
        });
        server.wait_executions("?status=success", |done| done.len() >= 3);
        // What is committed before the backup begins, and the backup while uploads go on.
        let before = ["items", "executions", "annotations"].map(|t| (t, last_id(&home, t)));
        let before = before.map(|(t, last)| (t, last, rows_up_to(&home, t, last)));
        let first = home.ok(&["backup", path(backup.path())]);
        let uploaded_during = uploads.load(Ordering::Relaxed);
        // Again: only the blobs the first did not copy.
        server.wait_executions("?status=success", |done| done.len() >= 5);
        let again = home.ok(&["backup", path(backup.path())]);
        stop.store(true, Ordering::Relaxed);
        (before, (first, uploaded_during, again))
    });
    let (first, uploaded_during, again) = during;
    assert!(blobs_copied(&first) > 0, "{first}");
    // The photos are two files under many names: the second finds both already there.
    assert_eq!(blobs_copied(&again), 0, "{again}");
    assert!(
        uploads.load(Ordering::Relaxed) > uploaded_during,
        "uploads went on during the backups"
    );
    drop(server);
    assert!(check_backup(backup.path()).contains("ok"));

    let restored = Home::new();
    let out = restored.ok(&["restore", path(backup.path())]);
    assert!(out.contains("check: ok"), "{out}");
    for (table, last, rows) in before {
        // At least: a row with a smaller id may commit after a larger one (PostgreSQL's
        // sequences), so rows below the mark can have grown since it was read.
        let got = rows_up_to(&restored, table, last);
        assert!(
            got >= rows,
            "{got} of the {rows} rows of {table} committed before the backup restored"
        );
    }
    // The restored home works: what was queued or running when it was taken runs now,
    // and every item it holds ends annotated exactly once.
    restored.ok(&["work", "--until-idle"]);
    let items = restored.count("SELECT COUNT(*) FROM items");
    let once = restored.count(
        "SELECT COUNT(*) FROM items i WHERE (SELECT COUNT(*) FROM executions e
           WHERE e.item_id = i.id AND e.status = 'success') = 1",
    );
    assert_eq!((once, items > 0), (items, true));
}

#[test]
fn restore_refuses_a_folder_without_a_backup_and_a_home_that_is_not_empty() {
    let home = Home::new();
    let empty = tempdir();
    let error = home.fails(&["restore", path(empty.path())]);
    assert!(
        error.contains(&format!("{} holds no backup", empty.path().display())),
        "{error}"
    );
    assert!(
        !empty.path().join("prelabel.db").exists(),
        "nothing made in the folder"
    );

    home.seed_flow(&[]);
    // Into its own home, the copy would replace the live database; into its blobs, mix them.
    for itself in [home.path().to_path_buf(), home.path().join("blobs")] {
        let error = home.fails(&["backup", path(&itself)]);
        assert!(
            error.contains("a backup goes into a folder of its own"),
            "{error}"
        );
    }
    let backup = tempdir();
    // A stopped backup's leftovers are cleared by the next.
    std::fs::create_dir_all(backup.path().join(".backup-in-progress/junk")).expect("leftovers");
    home.ok(&["backup", path(backup.path())]);
    assert!(!backup.path().join(".backup-in-progress").exists());
    let error = home.fails(&["restore", path(backup.path())]);
    assert!(error.contains("is not empty"), "{error}");
}
