//! Files in a test server's data directory.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

use postgres::Client;

/// The server's data directory (owned by the server's user).
pub fn data_directory(admin: &mut Client) -> PathBuf {
    let data: String = admin.query_one("SHOW data_directory", &[]).unwrap().get(0);
    PathBuf::from(data)
}

/// Writes `name` into the data directory, owned by the server's user with mode 0600 (the
/// server refuses a key others can read).
pub fn write_server_file(admin: &mut Client, name: &str, contents: &[u8]) {
    let data = data_directory(admin);
    let owner = std::fs::metadata(&data).unwrap();
    let path = data.join(name);
    std::fs::write(&path, contents).unwrap();
    std::os::unix::fs::chown(&path, Some(owner.uid()), Some(owner.gid())).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
}
