//! The Model Catalog (`Catalog`, `aihub.opendatahub.io/v1alpha1`): what its controller will
//! deploy, as pure builders. The reconcile loop is not wired yet: it is to be written on the
//! shared controller layer, and calls, in order, [`mro_api::catalog::validate`],
//! [`build::desired`], an applier, then [`build::status::available`].
//!
//! - [`settings`]: the catalog's own operator settings (images, `SKIP_MODEL_CATALOG_DB_CREATION`,
//!   `CATALOG_POSTGRES_*`, the registries namespace, the gateway).
//! - [`build`]: one module per group of objects, no I/O.
pub mod build;
pub mod settings;
