//! The stores the controllers keep (see [`crate::kube_ext::store`] for why), one set per
//! controller, each defined (and trimmed) in its controller's `watched` module. They sit
//! together in the shared [`crate::context::Context`] because one controller reads another's:
//! a transfer looks up the registry it names in the registry controller's store.
use crate::modelregistry::watched::RegistryStores;
use crate::modeltransfer::watched::TransferStores;

/// Every store the controllers keep.
#[derive(Default)]
pub struct Watched {
    pub registry: RegistryStores,
    pub transfer: TransferStores,
}
