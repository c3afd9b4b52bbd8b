//! Results: what comes out. Guests' [`annotation`]s as stored, people's [`review`] of them,
//! their [`export`] (COCO, CVAT, Label Studio tasks) and how they score against ground truth
//! ([`evaluate`]).

pub mod annotation;
pub mod evaluate;
pub mod export;
pub mod review;
