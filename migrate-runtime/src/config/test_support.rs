//! What the config unit tests share: a fake environment, resolving from it, and leak checks.

use std::collections::HashMap;
use std::ffi::OsString;

use postgres::config::Host;

use super::{ConfigError, ConnectionSettings};

pub(super) const SECRET: &str = "Zx9-very-secret-pw";

pub(super) fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

/// An environment of exactly these variables, with values that need not be UTF-8.
pub(super) fn env_os_of(pairs: &[(&str, &[u8])]) -> impl Fn(&str) -> Option<OsString> {
    let map: HashMap<String, OsString> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), os_string(v)))
        .collect();
    move |name| map.get(name).cloned()
}

#[cfg(unix)]
fn os_string(bytes: &[u8]) -> OsString {
    use std::os::unix::ffi::OsStringExt;
    OsString::from_vec(bytes.to_vec())
}

#[cfg(not(unix))]
fn os_string(bytes: &[u8]) -> OsString {
    OsString::from(String::from_utf8_lossy(bytes).into_owned())
}

pub(super) fn resolve(explicit: Option<&str>, pairs: &[(&str, &str)]) -> ConnectionSettings {
    ConnectionSettings::resolve(explicit, env_of(pairs))
        .unwrap()
        .expect("settings")
}

pub(super) fn resolve_err(explicit: Option<&str>, pairs: &[(&str, &str)]) -> ConfigError {
    match ConnectionSettings::resolve(explicit, env_of(pairs)) {
        Ok(settings) => panic!("expected an error, got {settings:?}"),
        Err(error) => error,
    }
}

pub(super) fn assert_secret_free(texts: &[String]) {
    for text in texts {
        assert!(!text.contains(SECRET), "password leaked: {text}");
        assert!(!text.contains("very-secret"), "password leaked: {text}");
    }
}

pub(super) fn assert_error_secret_free(error: &ConfigError) {
    assert_secret_free(&[error.to_string(), format!("{error:?}")]);
}

pub(super) fn tcp_hosts(settings: &ConnectionSettings) -> Vec<String> {
    settings
        .config()
        .get_hosts()
        .iter()
        .map(|host| match host {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect()
}
