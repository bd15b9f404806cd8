//! Process exit codes of model-sync (also listed in its `--help`).
//!
//! | code | meaning                                                                     |
//! |------|-----------------------------------------------------------------------------|
//! | 0    | success (or `--help` / `--version`)                                         |
//! | 1    | the transfer or a Model Registry call failed                                |
//! | 2    | invalid configuration: bad flags, env vars, credential or metadata files    |
//!
//! 2 matches what argument parsers conventionally return, so Job controllers and humans can
//! tell "fix the manifest" from "retry / look at the storage". They are `u8` because that is
//! what a process can return; [`as_status`] gives the `i32` a container status reports.

/// Exit code of a successful run.
pub const EXIT_OK: u8 = 0;
/// Exit code when the transfer or a registry call failed.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code when the configuration is invalid.
pub const EXIT_INVALID_CONFIG: u8 = 2;

/// An exit code as the kubelet reports it (`ContainerStateTerminated.exitCode`).
pub const fn as_status(code: u8) -> i32 {
    code as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_stable() {
        assert_eq!((EXIT_OK, EXIT_FAILURE, EXIT_INVALID_CONFIG), (0, 1, 2));
        assert_eq!(as_status(EXIT_INVALID_CONFIG), 2);
    }
}
