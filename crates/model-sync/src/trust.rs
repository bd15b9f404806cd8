//! Extra trusted CAs: the PEM bundle named by `SSL_CERT_FILE`, trusted next to the built-in
//! roots by the OCI, http(s) and signing clients. The path comes from the configuration (or,
//! in storage-initializer mode, from the load context); this module only reads it.
use std::path::Path;

use crate::transfer::TransferError;

/// The bundle at `path`, when one is set.
pub fn extra_ca(path: Option<&Path>) -> Result<Option<Vec<u8>>, TransferError> {
    let Some(path) = path else {
        return Ok(None);
    };
    std::fs::read(path).map(Some).map_err(|e| {
        TransferError::invalid_input(format!(
            "SSL_CERT_FILE: cannot read {}: {e}",
            path.display()
        ))
    })
}
