//! The catalog: what is deployed. Each push of a package is a [`revision`]; a [`service`] runs
//! one revision with its init inputs and runtime settings; [`secret`]s are the values its
//! downloads and init inputs may name; [`watch`] keeps a package folder live on a service;
//! [`settings`] are how a service's instances run, and [`instance_type`]s name classes of them.

pub mod instance_type;
pub mod revision;
pub mod secret;
pub mod service;
pub mod settings;
pub mod watch;
