//! Items: what comes in. Files in a dataset, uploaded ([`item`]) or linked by URL ([`link`]),
//! their [`thumbnail`]s, the items a function [`made`], and the store's changes as [`event`]s for live views. Writing an item
//! tells its caller what changed, in the same transaction, so that triggers can follow.

pub mod event;
pub mod item;
pub mod link;
pub mod made;
pub mod thumbnail;
