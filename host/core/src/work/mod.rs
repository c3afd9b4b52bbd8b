//! Work: what runs. An item's change fires its [`trigger`]s, which queue [`execution`]s (one
//! per function and item; [`batch`] queues a dataset's); the [`scheduler`] of a [`worker`] claims
//! them and runs each [`attempt`] in an instance. Beside the queue: [`predict`] (another tool
//! waits on one execution), [`local`] (a package on files, storing nothing), [`replay`] and
//! [`compare`] (a candidate revision beside a service). A [`pipeline`] chains functions, review
//! tasks and datasets after one source of item events.

pub mod attempt;
pub mod batch;
pub mod compare;
pub mod execution;
pub mod local;
pub mod pipeline;
pub mod predict;
pub mod replay;
pub mod scheduler;
pub mod trigger;
pub mod worker;
