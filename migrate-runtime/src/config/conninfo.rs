//! libpq `key=value` connection strings: reading their pairs and taking the TLS ones out.

use super::Stripped;

pub(super) fn strip_conninfo_params(input: &str) -> Result<Stripped, String> {
    let mut stripped = Stripped {
        rest: String::new(),
        ..Stripped::default()
    };
    let mut kept = Vec::new();
    for param in conninfo_params(input)? {
        if Stripped::is_read_here(param.key) {
            stripped.set(param.key, param.value);
        } else {
            kept.push(&input[param.span]);
        }
    }
    stripped.rest = kept.join(" ");
    Ok(stripped)
}

/// One `key = value` of a libpq `key=value` connection string, with the byte range it spans.
struct Param<'a> {
    key: &'a str,
    value: String,
    span: std::ops::Range<usize>,
}

/// Reads `key=value` pairs as libpq does: spaces around `=` allowed, values single-quoted or
/// bare, `\` escaping the next character. Errors never quote the input (it may hold a password).
fn conninfo_params(input: &str) -> Result<Vec<Param<'_>>, String> {
    let bytes = input.as_bytes();
    let skip_spaces = |mut i: usize| {
        while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        i
    };
    let mut params = Vec::new();
    let mut i = skip_spaces(0);
    while i < bytes.len() {
        let start = i;
        while bytes
            .get(i)
            .is_some_and(|b| !b.is_ascii_whitespace() && *b != b'=')
        {
            i += 1;
        }
        let key = &input[start..i];
        i = skip_spaces(i);
        if key.is_empty() || bytes.get(i) != Some(&b'=') {
            return Err(format!(
                "expected key=value pairs separated by spaces (at byte {start})"
            ));
        }
        let (value, end) = conninfo_value(bytes, skip_spaces(i + 1))?;
        params.push(Param {
            key,
            value,
            span: start..end,
        });
        i = skip_spaces(end);
    }
    Ok(params)
}

/// The value starting at byte `i`, and the byte after it.
pub(super) fn conninfo_value(bytes: &[u8], mut i: usize) -> Result<(String, usize), String> {
    let quoted = bytes.get(i) == Some(&b'\'');
    if quoted {
        i += 1;
    }
    let mut value = Vec::new();
    loop {
        match bytes.get(i) {
            None if quoted => return Err("a quoted value is not closed with `'`".to_owned()),
            None => break,
            Some(b'\'') if quoted => {
                i += 1;
                break;
            }
            Some(b) if !quoted && b.is_ascii_whitespace() => break,
            Some(b'\\') => {
                if let Some(next) = bytes.get(i + 1) {
                    value.push(*next);
                }
                i += 2;
            }
            Some(b) => {
                value.push(*b);
                i += 1;
            }
        }
    }
    // Only ASCII backslashes and quotes were removed from valid UTF-8, so it stays valid.
    Ok((
        String::from_utf8_lossy(&value).into_owned(),
        i.min(bytes.len()),
    ))
}

#[cfg(test)]
mod tests {
    use crate::config::strip_tls_params;
    use crate::config::test_support::resolve;
    use crate::config::tls::SslMode;

    #[test]
    fn conninfo_tls_params_are_stripped_and_understood() {
        let stripped = strip_tls_params(
            "host=h  sslmode = 'verify-full' sslrootcert='/my certs/ca.pem' password='a b\\'c' dbname=db",
        )
        .unwrap();
        assert_eq!(stripped.rest, "host=h password='a b\\'c' dbname=db");
        assert_eq!(stripped.sslmode.as_deref(), Some("verify-full"));
        assert_eq!(stripped.sslrootcert.as_deref(), Some("/my certs/ca.pem"));

        let settings = resolve(
            Some("host=h dbname=db user=u password='a b' sslmode=verify-ca"),
            &[],
        );
        assert_eq!(settings.ssl_mode, SslMode::VerifyCa);
        assert_eq!(settings.config().get_password(), Some(&b"a b"[..]));
        assert_eq!(
            settings.describe(),
            "postgresql://u@h:5432/db sslmode=verify-ca"
        );
    }
}
