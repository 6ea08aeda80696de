//! `postgresql://` URLs: taking the TLS parameters out of the query, and percent-decoding.

use super::Stripped;

pub(super) fn url_scheme_len(input: &str) -> Option<usize> {
    ["postgresql://", "postgres://"]
        .iter()
        .find(|scheme| input.starts_with(**scheme))
        .map(|scheme| scheme.len())
}

pub(super) fn strip_url_params(input: &str, scheme: usize) -> Result<Stripped, String> {
    // The query starts at the first `?` after the credentials, which (as the driver reads
    // them) end at the first `@`.
    let after_credentials = input[scheme..]
        .find('@')
        .map_or(scheme, |at| scheme + at + 1);
    let mut stripped = Stripped {
        rest: input.to_owned(),
        ..Stripped::default()
    };
    let Some(question) = input[after_credentials..].find('?') else {
        return Ok(stripped);
    };
    let query_start = after_credentials + question;
    let mut kept = Vec::new();
    for pair in input[query_start + 1..].split('&') {
        if let Some((key, value)) = pair.split_once('=') {
            let key = percent_decode(key)?;
            if Stripped::is_read_here(&key) {
                stripped.set(&key, percent_decode(value)?);
                continue;
            }
        }
        if !pair.is_empty() {
            kept.push(pair);
        }
    }
    stripped.rest = input[..query_start].to_owned();
    if !kept.is_empty() {
        stripped.rest.push('?');
        stripped.rest.push_str(&kept.join("&"));
    }
    Ok(stripped)
}

pub(super) fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(decoded)
        .map_err(|_| "a URL parameter is not UTF-8 after percent-decoding".to_owned())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use postgres::config::SslMode as DriverSslMode;

    use super::*;
    use crate::config::strip_tls_params;
    use crate::config::test_support::resolve;
    use crate::config::tls::SslMode;

    #[test]
    fn url_tls_params_are_stripped_and_understood() {
        let stripped = strip_tls_params(
            "postgresql://u:p@h:5/db?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=3",
        )
        .unwrap();
        assert_eq!(
            stripped,
            Stripped {
                rest: "postgresql://u:p@h:5/db?application_name=x".to_owned(),
                sslmode: Some("verify-full".to_owned()),
                sslrootcert: Some("/etc/ca.pem".to_owned()),
                liveness: vec![("connect_timeout".to_owned(), "3".to_owned())],
            }
        );
        let only_tls = strip_tls_params("postgres://h/db?sslmode=verify-ca").unwrap();
        assert_eq!(only_tls.rest, "postgres://h/db");
        let none = strip_tls_params("postgres://h/db").unwrap();
        assert_eq!(none.rest, "postgres://h/db");
        assert_eq!(none.sslmode, None);

        let settings = resolve(
            Some("postgresql://u@h/db?sslmode=verify-full&sslrootcert=/ca.pem"),
            &[],
        );
        assert_eq!(settings.ssl_mode, SslMode::VerifyFull);
        assert_eq!(settings.root_cert, Some(PathBuf::from("/ca.pem")));
        assert_eq!(settings.config().get_ssl_mode(), DriverSslMode::Require);
    }
}
