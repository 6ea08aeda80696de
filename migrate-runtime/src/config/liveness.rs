//! Noticing a dead peer. When the network stops delivering (no reset, no close: a firewall
//! dropping state, a paused VM, a pulled cable), neither end hears anything: without help the
//! client waits forever, and the server keeps our session, and with it the migration lock.
//!
//! Both ends of every connection we open therefore probe the other: TCP keepalives and a
//! TCP user timeout on the client's socket (the driver's settings), the same on the server's
//! socket of our session (`tcp_keepalives_*`, `tcp_user_timeout`), and
//! `client_connection_check_interval` (PostgreSQL 14 and later), so that a backend busy with a
//! statement, or waiting for a lock, looks at its socket and ends the session once the socket
//! is found dead. The connection string's libpq parameters (`keepalives`, `keepalives_idle`,
//! `keepalives_interval`, `keepalives_count`, `tcp_user_timeout` in milliseconds,
//! `connect_timeout`) set both ends; `keepalives=0` turns all of it off.
//!
//! The server side is set with one `set_config` query right after connecting, not with the
//! start-up `options`: a server that does not know a setting (`tcp_user_timeout` is
//! PostgreSQL 12+, `client_connection_check_interval` 14+) would refuse the whole connection,
//! and PgBouncer refuses `options` altogether. The query sets only what `pg_settings` lists.
//! `idle_in_transaction_session_timeout` is not set: an idle backend finds a dead socket through
//! its keepalives already, and the timeout would also end a healthy session whose client pauses
//! inside a transaction.

use std::time::Duration;

use postgres::{Client, Config};

/// Defaults: a peer silent for 30 s is probed every 10 s, and given up after 3 unanswered
/// probes, so a dead connection is found within a minute; data left unacknowledged for a
/// minute ends it too.
pub(super) const DEFAULT_KEEPALIVES_IDLE: Duration = Duration::from_secs(30);
pub(super) const DEFAULT_KEEPALIVES_INTERVAL: Duration = Duration::from_secs(10);
pub(super) const DEFAULT_KEEPALIVES_COUNT: u32 = 3;
pub(super) const DEFAULT_TCP_USER_TIMEOUT: Duration = Duration::from_secs(60);
/// Each attempt to open a connection (and each cancel request) gives up after this long.
pub(super) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The driver's keepalive idle time when nobody set one (the operating system's usual 2 hours).
const DRIVER_DEFAULT_IDLE: Duration = Duration::from_secs(2 * 60 * 60);

/// The connection-string parameters read here rather than by the driver: the driver does not
/// know libpq's `keepalives_count` and reads `tcp_user_timeout` in seconds where libpq reads
/// milliseconds. `keepalives_retries` is the driver's own name for `keepalives_count`.
pub(super) fn is_liveness_param(key: &str) -> bool {
    matches!(
        key,
        "keepalives"
            | "keepalives_idle"
            | "keepalives_interval"
            | "keepalives_count"
            | "keepalives_retries"
            | "tcp_user_timeout"
            | "connect_timeout"
    )
}

/// What a connection string said, each parameter parsed; `None` where it said nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Given {
    keepalives: Option<bool>,
    idle: Option<Duration>,
    interval: Option<Duration>,
    count: Option<u32>,
    /// Zero: the operating system's default (libpq's meaning).
    user_timeout: Option<Duration>,
    /// `Some(None)`: zero or negative, wait indefinitely (libpq's meaning).
    connect_timeout: Option<Option<Duration>>,
}

impl Given {
    /// Reads one parameter (`is_liveness_param(key)`); the error says what was expected.
    pub(super) fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let value = value.trim();
        let integer = |unit: &str| {
            value.parse::<i64>().map_err(|_| {
                format!("{key}={value} is not valid: expected a whole number of {unit}")
            })
        };
        let positive_seconds = |seconds: i64| match u64::try_from(seconds) {
            Ok(seconds) if seconds > 0 => Ok(Duration::from_secs(seconds)),
            _ => Err(format!(
                "{key}={value} is not valid: expected a number of seconds above 0"
            )),
        };
        match key {
            "keepalives" => self.keepalives = Some(integer("0 (off) or 1 (on)")? != 0),
            "keepalives_idle" => self.idle = Some(positive_seconds(integer("seconds")?)?),
            "keepalives_interval" => {
                self.interval = Some(positive_seconds(integer("seconds")?)?);
            }
            "keepalives_count" | "keepalives_retries" => {
                self.count = Some(match u32::try_from(integer("probes")?) {
                    Ok(count) if count > 0 => count,
                    _ => {
                        return Err(format!(
                            "{key}={value} is not valid: expected a number of probes above 0"
                        ))
                    }
                });
            }
            "tcp_user_timeout" => {
                let millis = integer("milliseconds")?;
                self.user_timeout = Some(Duration::from_millis(u64::try_from(millis).map_err(
                    |_| format!("{key}={value} is not valid: expected milliseconds, 0 or more"),
                )?));
            }
            "connect_timeout" => {
                let seconds = integer("seconds")?;
                // libpq: zero or negative waits indefinitely; 1 is taken as 2.
                self.connect_timeout = Some(
                    u64::try_from(seconds)
                        .ok()
                        .filter(|seconds| *seconds > 0)
                        .map(|seconds| Duration::from_secs(seconds.max(2))),
                );
            }
            _ => unreachable!("not a liveness parameter: {key}"),
        }
        Ok(())
    }

    /// The settings, with the defaults where nothing was given.
    pub(super) fn resolve(self) -> Liveness {
        Liveness {
            keepalives: self.keepalives.unwrap_or(true),
            idle: self.idle.unwrap_or(DEFAULT_KEEPALIVES_IDLE),
            interval: self.interval.unwrap_or(DEFAULT_KEEPALIVES_INTERVAL),
            count: self.count.unwrap_or(DEFAULT_KEEPALIVES_COUNT),
            user_timeout: match self.user_timeout {
                Some(timeout) if timeout.is_zero() => None,
                Some(timeout) => Some(timeout),
                None => Some(DEFAULT_TCP_USER_TIMEOUT),
            },
            connect_timeout: self
                .connect_timeout
                .unwrap_or(Some(DEFAULT_CONNECT_TIMEOUT)),
        }
    }

    /// What a driver config set by hand says: its values where they differ from the driver's
    /// defaults, ours where it left them alone.
    pub(super) fn from_driver(config: &Config) -> Given {
        Given {
            keepalives: Some(config.get_keepalives()),
            idle: Some(config.get_keepalives_idle()).filter(|idle| *idle != DRIVER_DEFAULT_IDLE),
            interval: config.get_keepalives_interval(),
            count: config.get_keepalives_retries(),
            user_timeout: config.get_tcp_user_timeout().copied(),
            connect_timeout: config.get_connect_timeout().map(|timeout| Some(*timeout)),
        }
    }
}

/// How a connection notices a dead peer (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Liveness {
    keepalives: bool,
    idle: Duration,
    interval: Duration,
    count: u32,
    /// `None`: the operating system's default.
    user_timeout: Option<Duration>,
    /// `None`: wait indefinitely.
    connect_timeout: Option<Duration>,
}

impl Liveness {
    /// The client's side: the driver's socket options.
    pub(super) fn apply(&self, config: &mut Config) {
        config
            .keepalives(self.keepalives)
            .keepalives_idle(self.idle)
            .keepalives_interval(self.interval)
            .keepalives_retries(self.count);
        if let Some(timeout) = self.user_timeout {
            config.tcp_user_timeout(timeout);
        }
        if let Some(timeout) = self.connect_timeout {
            config.connect_timeout(timeout);
        }
    }

    /// How long after the network stops delivering the client errors out and the server ends
    /// the session. Silent for `keepalives_idle`, the socket is probed every
    /// `keepalives_interval`; it is given up after `keepalives_count` unanswered probes, or,
    /// with a user timeout (Linux), at the first probe at least that long after the peer was
    /// last heard. The server's backend looks at its socket up to one interval later.
    pub(super) fn dead_peer_bound(&self) -> Option<Duration> {
        if !self.keepalives {
            return None;
        }
        let probes = match self.user_timeout {
            Some(timeout) if cfg!(target_os = "linux") => {
                let after_idle = timeout.saturating_sub(self.idle).as_millis();
                let interval = self.interval.as_millis().max(1);
                u32::try_from(after_idle.div_ceil(interval).max(1)).unwrap_or(u32::MAX)
            }
            _ => self.count,
        };
        Some(
            self.idle
                .saturating_add(self.interval.saturating_mul(probes))
                .saturating_add(self.interval),
        )
    }

    /// The server's side of the session, as `(setting, value)` pairs. Nothing with
    /// `keepalives=0`: the user asked for no probing.
    pub(super) fn server_settings(&self) -> Vec<(&'static str, String)> {
        if !self.keepalives {
            return Vec::new();
        }
        let mut settings = vec![
            ("tcp_keepalives_idle", self.idle.as_secs().to_string()),
            (
                "tcp_keepalives_interval",
                self.interval.as_secs().to_string(),
            ),
            ("tcp_keepalives_count", self.count.to_string()),
        ];
        if let Some(timeout) = self.user_timeout {
            settings.push(("tcp_user_timeout", timeout.as_millis().to_string()));
        }
        settings.push((
            "client_connection_check_interval",
            self.interval.as_millis().to_string(),
        ));
        settings
    }

    /// Sets [`server_settings`](Self::server_settings) on the session, in one round trip,
    /// skipping those the server does not have.
    pub(super) fn configure_session(&self, client: &mut Client) -> Result<(), postgres::Error> {
        let settings = self.server_settings();
        if settings.is_empty() {
            return Ok(());
        }
        // Names and numbers only, made here: nothing from the user is formatted into SQL.
        let values = settings
            .iter()
            .map(|(name, value)| format!("('{name}', '{value}')"))
            .collect::<Vec<_>>()
            .join(", ");
        client.simple_query(&format!(
            "SELECT set_config(wanted.name, wanted.setting, false) FROM (VALUES {values}) AS wanted (name, setting) WHERE wanted.name IN (SELECT name FROM pg_catalog.pg_settings)"
        ))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::{resolve, resolve_err};
    use crate::config::ConfigError;

    #[test]
    fn defaults_bound_a_dead_peer_to_about_a_minute() {
        let settings = resolve(Some("postgresql://u@h/db"), &[]);
        let config = settings.config();
        assert!(config.get_keepalives());
        assert_eq!(config.get_keepalives_idle(), Duration::from_secs(30));
        assert_eq!(
            config.get_keepalives_interval(),
            Some(Duration::from_secs(10))
        );
        assert_eq!(config.get_keepalives_retries(), Some(3));
        assert_eq!(
            config.get_tcp_user_timeout(),
            Some(&Duration::from_secs(60))
        );
        assert_eq!(config.get_connect_timeout(), Some(&Duration::from_secs(10)));
        assert_eq!(settings.dead_peer_bound(), Some(Duration::from_secs(70)));
        assert_eq!(
            settings.liveness.server_settings(),
            [
                ("tcp_keepalives_idle", "30".to_owned()),
                ("tcp_keepalives_interval", "10".to_owned()),
                ("tcp_keepalives_count", "3".to_owned()),
                ("tcp_user_timeout", "60000".to_owned()),
                ("client_connection_check_interval", "10000".to_owned()),
            ]
        );
    }

    #[test]
    fn libpq_parameters_set_both_ends_in_libpq_units() {
        for input in [
            "postgresql://u@h/db?keepalives_idle=1&keepalives_interval=1&keepalives_count=2&tcp_user_timeout=3000&connect_timeout=5",
            "host=h dbname=db keepalives_idle=1 keepalives_interval = 1 keepalives_retries=2 tcp_user_timeout='3000' connect_timeout=5",
        ] {
            let settings = resolve(Some(input), &[]);
            let config = settings.config();
            assert_eq!(config.get_keepalives_idle(), Duration::from_secs(1), "{input}");
            assert_eq!(config.get_keepalives_retries(), Some(2), "{input}");
            // libpq's tcp_user_timeout is in milliseconds (the driver's own parser reads seconds).
            assert_eq!(
                config.get_tcp_user_timeout(),
                Some(&Duration::from_millis(3000)),
                "{input}"
            );
            assert_eq!(config.get_connect_timeout(), Some(&Duration::from_secs(5)));
            assert_eq!(settings.dead_peer_bound(), Some(Duration::from_secs(4)));
            assert_eq!(settings.liveness.server_settings()[3].1, "3000");
        }
    }

    #[test]
    fn keepalives_off_and_zero_timeouts_mean_what_libpq_means() {
        let settings = resolve(
            Some("postgresql://u@h/db?keepalives=0&tcp_user_timeout=0&connect_timeout=0"),
            &[],
        );
        let config = settings.config();
        assert!(!config.get_keepalives());
        assert_eq!(config.get_tcp_user_timeout(), None);
        assert_eq!(config.get_connect_timeout(), None);
        assert_eq!(settings.dead_peer_bound(), None);
        assert!(settings.liveness.server_settings().is_empty());
    }

    #[test]
    fn bad_values_name_the_parameter() {
        for (input, expected) in [
            ("keepalives_idle=soon", "keepalives_idle=soon"),
            ("keepalives_interval=0", "above 0"),
            ("keepalives_count=-1", "keepalives_count=-1"),
            ("tcp_user_timeout=1.5", "milliseconds"),
        ] {
            let error = resolve_err(Some(&format!("postgresql://u@h/db?{input}")), &[]);
            assert!(
                matches!(error, ConfigError::InvalidConnectionString { .. }),
                "{error:?}"
            );
            assert!(error.to_string().contains(expected), "{error}");
        }
    }

    #[test]
    fn a_hand_made_config_keeps_its_own_values() {
        let mut config = Config::new();
        config
            .host("h")
            .keepalives_idle(Duration::from_secs(5))
            .tcp_user_timeout(Duration::from_secs(9));
        let settings = crate::config::ConnectionSettings::from_config(config);
        let config = settings.config();
        assert_eq!(config.get_keepalives_idle(), Duration::from_secs(5));
        assert_eq!(config.get_tcp_user_timeout(), Some(&Duration::from_secs(9)));
        assert_eq!(
            config.get_keepalives_interval(),
            Some(DEFAULT_KEEPALIVES_INTERVAL)
        );
    }
}
