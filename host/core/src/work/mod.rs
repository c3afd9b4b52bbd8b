//! Work: what runs. An item's change fires its [`trigger`]s, which queue [`execution`]s (one
//! per function and item; [`batch`] queues a dataset's); the [`scheduler`] of a [`worker`] claims
//! them and runs each [`attempt`] in an instance. Beside the queue: [`predict`] (another tool
//! waits on one execution), [`local`] (a package on files, storing nothing), [`replay`] and
//! [`compare`] (a candidate revision beside a service). A [`pipeline`] chains functions, review
//! tasks and datasets after one source of item events; a review [`task`] holds items for people.

pub mod attempt;
pub mod batch;
pub mod compare;
pub mod execution;
pub mod local;
pub mod metrics;
pub mod pipeline;
pub mod predict;
pub mod replay;
pub mod scheduler;
pub mod task;
pub mod trigger;
pub mod worker;

use crate::error::Result;
use crate::items::item::{Change, ItemRecord};
use crate::store::Tx;

/// What follows an item's change, inside the transaction that wrote it: its triggers fire and
/// the pipelines whose source takes it start. `ops` hands this to `item::upload` and
/// `link::link`; returns how many executions were queued.
pub fn on_item_change(tx: &Tx<'_>, item: &ItemRecord, change: Change) -> Result<usize> {
    Ok(trigger::on_item_change(tx, item, change)? + pipeline::on_item_change(tx, item, change)?)
}
