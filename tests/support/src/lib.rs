//! What both test trees share (`migrate-runtime/tests/` and the `migrate-tests` crate): running
//! a command line without the caller's settings and reading what it showed, directories of
//! migration files, servers that demand a password, and TLS certificates made with openssl.
//!
//! Nothing here uses a `migrate_runtime` type: migrate-runtime's own integration tests depend
//! on this crate, so a server is reached through a `postgres::Client` connected as its
//! superuser (`TestServer::connect("postgres")`) and its TCP port.

pub mod files;
pub mod passwords;
pub mod process;
pub mod server;
pub mod tls;
