//! Integrations: the protocols of the labelling tools Prelabel serves. [`labelstudio`] is Label
//! Studio's ML backend (its label config, its tasks' images); CVAT needs only a format
//! (`results/export/cvat.rs`) and the routes in `prelabel-api`.

pub mod labelstudio;
