//! Integration tests: one test binary, so one control plane per run; each test gets its own namespace.
#![forbid(unsafe_code)]

mod catalog_contract;
mod catalog_controller;
mod crds;
mod delivery;
mod delivery_aihub;
mod delivery_catalog;
mod delivery_odh;
mod demo;
mod docs;
mod model_registry_contract;
mod model_sync;
mod modelregistry_controller;
mod modeltransfer_controller;
mod modeltransfer_e2e;
mod node;
mod security;
mod signing;
mod smoke_http;
mod smoke_kube;
mod smoke_oci;
mod smoke_s3;
