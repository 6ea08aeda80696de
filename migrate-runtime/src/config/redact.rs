//! Showing settings and connection strings without their password: `describe`, `Debug`, `redact`.

use std::fmt;

use postgres::config::Host;

use super::conninfo::conninfo_value;
use super::tls::SslMode;
use super::url::percent_decode;
use super::ConnectionSettings;

impl ConnectionSettings {
    /// A one-line description safe to print and log: `postgresql://user@host:port/dbname` (Unix socket hosts
    /// shown as the path), plus ` sslmode=...` when not the default. NEVER the password.
    ///
    /// ```
    /// let url = "postgresql://app:s3cret@db.internal:6432/app?sslmode=verify-full";
    /// let settings = migrate_runtime::config::ConnectionSettings::resolve(Some(url), |_| None)?.unwrap();
    /// assert_eq!(settings.describe(), "postgresql://app@db.internal:6432/app sslmode=verify-full");
    /// # Ok::<(), migrate_runtime::config::ConfigError>(())
    /// ```
    pub fn describe(&self) -> String {
        let mut text = String::from("postgresql://");
        if let Some(user) = self.config.get_user() {
            text.push_str(user);
            text.push('@');
        }
        text.push_str(&self.hosts_text());
        if let Some(dbname) = self.config.get_dbname() {
            text.push('/');
            text.push_str(dbname);
        }
        if self.ssl_mode != SslMode::Prefer {
            text.push_str(" sslmode=");
            text.push_str(self.ssl_mode.as_str());
        }
        if let Some(root_cert) = &self.root_cert {
            text.push_str(&format!(" sslrootcert={}", root_cert.display()));
        }
        text
    }

    /// `host:port` for each host, comma-separated, as a URL would list them.
    pub(super) fn hosts_text(&self) -> String {
        let hosts = self.config.get_hosts();
        let addrs = self.config.get_hostaddrs();
        let ports = self.config.get_ports();
        (0..hosts.len().max(addrs.len()))
            .map(|i| {
                let host = match (hosts.get(i), addrs.get(i)) {
                    (Some(Host::Tcp(name)), _) if name.contains(':') => format!("[{name}]"),
                    (Some(Host::Tcp(name)), _) => name.clone(),
                    #[cfg(unix)]
                    (Some(Host::Unix(path)), _) => path.display().to_string(),
                    (None, Some(addr)) if addr.is_ipv6() => format!("[{addr}]"),
                    (None, Some(addr)) => addr.to_string(),
                    (None, None) => String::new(),
                };
                let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
                format!("{host}:{port}")
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl fmt::Debug for ConnectionSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionSettings")
            .field("target", &self.describe())
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// A database URL with its password replaced by `***` (for messages that echo user input). Also handles
/// `password=` key/value connection strings.
///
/// It errs on the side of hiding too much: a malformed URL may lose more than its password.
///
/// ```
/// use migrate_runtime::config::redact;
///
/// assert_eq!(redact("postgresql://app:s3cret@db/app"), "postgresql://app:***@db/app");
/// assert_eq!(redact("host=db password='s3 cret' dbname=app"), "host=db password=*** dbname=app");
/// ```
pub fn redact(url_or_conninfo: &str) -> String {
    match url_or_conninfo.find("://") {
        Some(scheme_end) => redact_url(url_or_conninfo, scheme_end + 3),
        None => redact_conninfo(url_or_conninfo),
    }
}

fn redact_url(url: &str, authority: usize) -> String {
    // The last `@` (not the first, as the driver reads it): a password with a raw `@` must not
    // leak its tail.
    let (credentials, rest) = match url[authority..].rfind('@') {
        Some(at) => (&url[authority..authority + at], &url[authority + at..]),
        None => ("", &url[authority..]),
    };
    let credentials = match credentials.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None => credentials.to_owned(),
    };
    let rest = match rest.split_once('?') {
        Some((path, query)) => format!("{path}?{}", redact_query(query)),
        None => rest.to_owned(),
    };
    format!("{}{credentials}{rest}", &url[..authority])
}

fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if is_password_key(key) => format!("{key}=***"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn is_password_key(key: &str) -> bool {
    percent_decode(key).is_ok_and(|key| key.eq_ignore_ascii_case("password"))
}

/// Masks the values of `password` keys, reading leniently (a malformed string is still
/// masked), and any word that is not `key=value` (it may be a pasted password).
fn redact_conninfo(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_whitespace() {
            out.push(char::from(bytes[i]));
            i += 1;
            continue;
        }
        let start = i;
        while bytes
            .get(i)
            .is_some_and(|b| !b.is_ascii_whitespace() && *b != b'=')
        {
            i += 1;
        }
        let key = &text[start..i];
        let mut after_key = i;
        while bytes.get(after_key).is_some_and(u8::is_ascii_whitespace) {
            after_key += 1;
        }
        if bytes.get(after_key) != Some(&b'=') {
            out.push_str("***");
            continue;
        }
        let value_start = (after_key + 1..bytes.len())
            .find(|&j| !bytes[j].is_ascii_whitespace())
            .unwrap_or(bytes.len());
        let end = conninfo_value(bytes, value_start).map_or(bytes.len(), |(_, end)| end);
        out.push_str(key);
        if key.eq_ignore_ascii_case("password") {
            out.push_str("=***");
        } else {
            out.push_str(&text[i..end]);
        }
        i = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use postgres::Config;

    use super::*;
    use crate::config::test_support::{assert_secret_free, resolve, SECRET};

    #[test]
    fn describe_and_redact_never_show_the_password() {
        let url = format!("postgresql://u:{SECRET}@h/db?password={SECRET}&sslmode=require");
        let conninfo = format!("host=h password = '{SECRET}' user=u");
        let sources: Vec<ConnectionSettings> = vec![
            resolve(Some(&url), &[]),
            resolve(None, &[("DATABASE_URL", &conninfo)]),
            resolve(None, &[("DB_HOST", "h"), ("DB_PASSWORD", SECRET)]),
            resolve(None, &[("PGHOST", "h"), ("PGPASSWORD", SECRET)]),
            ConnectionSettings::from_config({
                let mut config = Config::new();
                config.host("h").password(SECRET);
                config
            }),
        ];
        for settings in &sources {
            assert_eq!(settings.config().get_password(), Some(SECRET.as_bytes()));
            assert_secret_free(&[settings.describe(), format!("{settings:?}")]);
        }
        assert_secret_free(&[redact(&url), redact(&conninfo)]);
        assert_eq!(
            redact(&url),
            "postgresql://u:***@h/db?password=***&sslmode=require"
        );
        assert_eq!(redact(&conninfo), "host=h password=*** user=u");
    }

    #[test]
    fn redact_handles_odd_input() {
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("postgres://u:p@ss@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("host=h PASSWORD=x"), "host=h PASSWORD=***");
        assert_eq!(redact("password='unterminated"), "password=***");
        assert_eq!(redact("password=a\\ b host=h"), "password=*** host=h");
        assert_eq!(redact("x:y@h"), "***");
        assert_eq!(redact("postgresql:/u:p@h/db"), "***");
        assert_eq!(redact(""), "");
    }
}
