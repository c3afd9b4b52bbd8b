//! Executions taken back: from workers that stopped or were lost, from a process that died
//! mid-run, and from a home shut down with work in hand.

use super::*;

/// What a scheduler found left `running` by processes that stopped.
#[derive(Debug, Default, Clone, Copy)]
pub struct Interrupted {
    /// Re-queued: the interrupted attempt is not charged.
    pub requeued: usize,
    /// Failed: the host stopped during them more often than their service allows
    /// (`max_attempts`), which is how an item that crashes the host ends.
    pub failed: usize,
}

/// Deals with what a killed process left `running`, on the embedded store, where one
/// scheduler runs per home: only it calls this, at its start, while holding the home's lock,
/// so every queue execution still `running` was left by a process that stopped. Direct
/// executions (`prelabel execute`) are not queue work: one whose process is gone is failed,
/// one whose process lives is left alone. (With a shared database, workers find each other's
/// lost executions by their leases instead: see [`claim_next`].)
pub fn requeue_interrupted(store: &mut Store) -> Result<Interrupted> {
    let tx = store.write()?;
    let failed = fail_stopped_direct(&tx, "status = 'running'", params![], true)?;
    let mut interrupted = requeue(&tx, "status = 'running' AND direct = 0", params![])?;
    interrupted.failed += failed;
    tx.commit()?;
    Ok(interrupted)
}

/// What a scheduler starting on a shared database finds left `running` by earlier
/// schedulers of its own home (killed: the home's lock says they are gone) goes back on the
/// queue at once, as on the embedded store; other workers' lost executions wait for their
/// leases to run out.
pub fn requeue_home(store: &mut Store, home_key: &str, worker: &Worker) -> Result<Interrupted> {
    let tx = store.write()?;
    let interrupted = requeue(
        &tx,
        "status = 'running' AND direct = 0
         AND worker_id IN (SELECT id FROM workers WHERE home = $1 AND id != $2 AND stopped_at IS NULL)",
        params![home_key, worker.id],
    )?;
    tx.commit()?;
    Ok(interrupted)
}

/// Executions of lost workers (see [`crate::work::worker`]), by the database's clock, other than
/// the worker whose id is parameter `${me}`. A process knows that it is running: a heartbeat
/// that could not be written in time (SQLite's write lock waited on past the lease, a machine
/// too loaded to schedule the thread) says nothing about the worker asking, and taking its
/// own running executions for interrupted lost their outcomes (issue 36: a healthy `serve`
/// failed an execution as "host stopped during this execution 2 times").
pub(super) fn of_lost_workers(me: usize) -> String {
    format!(
        "worker_id IN (SELECT id FROM workers WHERE stopped_at IS NULL AND id != ${me}
                          AND heartbeat_ms + lease_ms < {NOW_MS})"
    )
}

/// Puts the running executions that `condition` selects back on the queue: an interrupted
/// attempt is not charged, so a one-off kill costs nothing; but each execution may be
/// interrupted at most its service's `max_attempts` times: the next interruption fails it, so
/// that an item that crashes its host does not loop through every restart.
pub(super) fn requeue(tx: &Tx<'_>, condition: &str, args: Params<'_>) -> Result<Interrupted> {
    let n = args.len();
    let note = format!("${}", n + 1);
    let mut with_note: Vec<&dyn ToValue> = args.to_vec();
    let text = "[prelabel: the host stopped during this attempt]\n";
    with_note.push(&text);
    tx.execute(
        &format!("UPDATE executions SET interrupted = interrupted + 1, logs = logs || {note} WHERE {condition}"),
        &with_note,
    )?;
    let failed = tx.execute(
        &format!("UPDATE executions SET status = 'failed',
                error = 'host stopped during this execution ' || interrupted || ' times',
                finished_at = {NOW}
          WHERE {condition}
            AND interrupted > COALESCE((SELECT max_attempts FROM services s WHERE s.id = service_id), 0)"),
        args,
    )?;
    let requeued = tx.execute(
        &format!(
            "UPDATE executions SET status = 'queued', attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END,
                    started_at = NULL, worker_id = NULL, claim = NULL
              WHERE {condition}"
        ),
        args,
    )?;
    Ok(Interrupted { requeued, failed })
}

/// Fails the direct executions that `condition` selects, as stopped; with `local_pids` (every
/// process is on this machine), not those whose process still lives. How many it failed.
pub(super) fn fail_stopped_direct(
    tx: &Tx<'_>,
    condition: &str,
    args: Params<'_>,
    local_pids: bool,
) -> Result<usize> {
    let direct = tx.query_map(
        &format!("SELECT id, direct_pid FROM executions WHERE {condition} AND direct = 1"),
        args,
        |r| Ok((r.get::<i64>(0)?, r.get::<Option<i64>>(1)?)),
    )?;
    let mut failed = 0;
    for (id, pid) in direct {
        if local_pids && pid.is_some_and(process_is_alive) {
            continue;
        }
        failed += fail_running(
            tx,
            id,
            None,
            "the process running this direct execution stopped",
        )?;
    }
    Ok(failed)
}

/// Whether a process with this id exists (signal 0 checks without sending anything).
pub(super) fn process_is_alive(pid: i64) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks that the process exists.
    unsafe {
        libc::kill(pid, 0) == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
}
