//! Database wiring of the registry containers: flags, environment and TLS files.
//!
//! Why this shape: every value must be in the grammar of the driver that reads it (go-sql-driver
//! for MySQL, pgx for PostgreSQL, gflags for the ML Metadata server), TLS flags must name files
//! (the servers read them with `os.ReadFile`), and no secret may appear in a process's argv
//! (visible in `/proc/<pid>/cmdline` to anything on the node, and in the Deployment). So:
//! - passwords come from Secrets through environment variables the program itself reads:
//!   `PGPASSWORD`/`PGSSLPASSWORD` (pgx, pgconn/config.go@v5.6.0:438-454), `FLAGS_<flag>` with
//!   `--fromenv=<flag>` (gflags, src/gflags.cc@v2.3.0:120, used by ML Metadata), and for MySQL
//!   the whole DSN in `MR_EMBEDMD_DATABASE_DSN` (the server reads every flag from `MR_<FLAG>`,
//!   cmd/root.go@v0.2.22:87-114, @v0.3.8:84-107), built by Kubernetes' `$(VAR)` expansion;
//! - no password Secret means no password argument or variable at all;
//! - text from the spec that ends up in args or env values has its `$` doubled, so Kubernetes'
//!   `$(VAR)` expansion cannot pick up a user's string.
//!
//! [`wiring`] holds what both layouts share; [`embedded`] and [`mlmd`] the flags of each.
pub mod embedded;
pub mod mlmd;
#[cfg(test)]
mod tests;
pub mod wiring;

pub use embedded::{GO_TLS_CIPHERS, mysql_dsn_env, mysql_embedded, postgres_embedded};
pub use mlmd::{mysql_mlmd, postgres_mlmd};
pub use wiring::{
    DB_TLS_DIR, DbWiring, MYSQL_DSN_ENV, MYSQL_PASSWORD_ENV, PGPASSWORD_ENV, PGSSLPASSWORD_ENV,
    escape_expansion,
};
