//! Client settings shared by every Kafka client the engine creates: the bootstrap brokers, how
//! long to wait for them, and the user's librdkafka properties — checked so that no client can
//! commit offsets, join a group or create topics, and printable without leaking credentials.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaConfRes;
use rdkafka::ClientConfig;

use crate::error::{Error, Result};

/// Bootstrap brokers used when neither the `brokers` parameter, the `bootstrap.servers`
/// property nor the `KAFKA_BOOTSTRAP_SERVERS` environment variable says otherwise.
pub const DEFAULT_BROKERS: &str = "localhost:9092";

/// How long to wait for brokers and metadata when no `timeout` is given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest `timeout`: librdkafka takes timeouts as a C `int` of milliseconds, and a longer
/// one wraps around and expires at once.
pub const MAX_TIMEOUT: Duration = Duration::from_millis(i32::MAX as u64);

/// The protocols librdkafka accepts as a `protocol://` prefix of a bootstrap broker.
const BROKER_PROTOCOLS: [&str; 4] = ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];

/// The environment variable consulted for the bootstrap brokers.
const BROKERS_ENV: &str = "KAFKA_BOOTSTRAP_SERVERS";

/// librdkafka properties that name the bootstrap brokers; they are folded into `brokers`.
const BROKER_PROPERTIES: [&str; 2] = ["bootstrap.servers", "metadata.broker.list"];

/// Properties kafkars pins to `false` because any other value would change the cluster:
/// committing or storing offsets, or creating topics on first use.
const PINNED_OFF: [(&str, &str); 3] = [
    (
        "enable.auto.commit",
        "kafkars never commits offsets; remove it or set it to 'false'",
    ),
    (
        "enable.auto.offset.store",
        "kafkars never stores offsets; remove it or set it to 'false'",
    ),
    (
        "allow.auto.create.topics",
        "kafkars never creates topics; remove it or set it to 'false'",
    ),
];

/// Validated settings for a Kafka client. Build them with [`ClientSettings::builder`].
///
/// `Debug` shows the properties with credentials replaced by `***`.
#[derive(Clone)]
pub struct ClientSettings {
    brokers: String,
    timeout: Duration,
    properties: BTreeMap<String, String>,
}

/// Builder for [`ClientSettings`].
#[derive(Default, Clone)]
pub struct ClientSettingsBuilder {
    brokers: Option<String>,
    timeout: Option<Duration>,
    properties: Vec<(String, String)>,
    brokers_from_env: Option<Option<String>>,
}

impl ClientSettings {
    /// Start building settings.
    pub fn builder() -> ClientSettingsBuilder {
        ClientSettingsBuilder::default()
    }

    /// The bootstrap broker list, as it will be given to librdkafka.
    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    /// How long a request may wait for the brokers before it fails.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The user's librdkafka properties (without the bootstrap list).
    pub fn properties(&self) -> &BTreeMap<String, String> {
        &self.properties
    }

    /// The librdkafka configuration for a client that only reads: the user's properties, the
    /// bootstrap list, and the side-effect switches pinned off.
    ///
    /// A TLS connection (`security.protocol` `ssl` or `sasl_ssl`) that names no CA
    /// certificates (`ssl.ca.location`, `ssl.ca.pem`) gets `ssl.ca.location=probe`: OpenSSL is
    /// compiled into kafkars, and its built-in certificate folder is where the build put it,
    /// not where this system keeps its CA bundle. librdkafka then looks in the usual places
    /// (`/etc/ssl/certs/ca-certificates.crt`, `/etc/pki/tls/certs/ca-bundle.crt`, ...), as it
    /// does itself when it detects a static OpenSSL at configure time (rdkafka_ssl.c).
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        if self.uses_tls()
            && !self.properties.contains_key("ssl.ca.location")
            && !self.properties.contains_key("ssl.ca.pem")
        {
            config.set("ssl.ca.location", "probe");
        }
        config.set("bootstrap.servers", &self.brokers);
        for (key, _) in PINNED_OFF {
            config.set(key, "false");
        }
        config
    }

    /// Whether the connection is TLS: `security.protocol` `ssl` or `sasl_ssl` (any case).
    fn uses_tls(&self) -> bool {
        self.properties
            .get("security.protocol")
            .is_some_and(|protocol| {
                protocol.eq_ignore_ascii_case("ssl") || protocol.eq_ignore_ascii_case("sasl_ssl")
            })
    }

    /// Replace every credential value that occurs in `text` by `***`, so that messages coming
    /// back from librdkafka can be shown safely.
    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for (key, value) in &self.properties {
            if is_secret_property(key) && !value.is_empty() {
                text = text.replace(value.as_str(), "***");
            }
        }
        text
    }
}

impl fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let properties: BTreeMap<&str, &str> = self
            .properties
            .iter()
            .map(|(key, value)| {
                let shown = if is_secret_property(key) {
                    "***"
                } else {
                    value
                };
                (key.as_str(), shown)
            })
            .collect();
        f.debug_struct("ClientSettings")
            .field("brokers", &self.brokers)
            .field("timeout", &self.timeout)
            .field("properties", &properties)
            .finish()
    }
}

impl ClientSettingsBuilder {
    /// The bootstrap brokers, `host:port[,host:port…]`. Overrides `KAFKA_BOOTSTRAP_SERVERS`.
    pub fn brokers(mut self, brokers: impl Into<String>) -> Self {
        self.brokers = Some(brokers.into());
        self
    }

    /// How long to wait for brokers and metadata before failing (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// One librdkafka property. Later values of the same key win.
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }

    /// Several librdkafka properties, as from a SQL `MAP` or a Python `dict`.
    pub fn properties<K, V>(mut self, properties: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        self.properties
            .extend(properties.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Use this value instead of reading `KAFKA_BOOTSTRAP_SERVERS` (for tests).
    pub fn brokers_from_env(mut self, value: Option<String>) -> Self {
        self.brokers_from_env = Some(value);
        self
    }

    /// Check everything and produce the settings.
    ///
    /// # Errors
    /// - [`Error::InvalidParameter`] for a malformed broker list, a timeout under 1 ms or over
    ///   [`MAX_TIMEOUT`], an empty property name, a property librdkafka doesn't know or
    ///   whose value it refuses, or `brokers` contradicting `bootstrap.servers`;
    /// - [`Error::ForbiddenConfig`] for a property that would commit offsets or create topics.
    pub fn build(self) -> Result<ClientSettings> {
        let timeout = self.timeout.unwrap_or(DEFAULT_TIMEOUT);
        check_timeout(timeout)?;

        let mut properties = BTreeMap::new();
        let mut brokers_from_config: Option<(String, String)> = None;
        for (key, value) in self.properties {
            let key = key.trim().to_owned();
            if key.is_empty() {
                return Err(Error::InvalidParameter {
                    parameter: "config".into(),
                    reason: "a property name is empty".into(),
                });
            }
            if let Some((_, reason)) = PINNED_OFF.iter().find(|(name, _)| *name == key) {
                if !value.trim().eq_ignore_ascii_case("false") {
                    return Err(Error::ForbiddenConfig {
                        key,
                        reason: (*reason).into(),
                    });
                }
                continue;
            }
            if BROKER_PROPERTIES.contains(&key.as_str()) {
                brokers_from_config = Some((key, value));
                continue;
            }
            check_property(&key, &value)?;
            properties.insert(key, value);
        }

        let env = match self.brokers_from_env {
            Some(value) => value,
            None => std::env::var(BROKERS_ENV).ok(),
        };
        let brokers = resolve_brokers(self.brokers, brokers_from_config, env)?;
        Ok(ClientSettings {
            brokers,
            timeout,
            properties,
        })
    }
}

/// A timeout librdkafka can honour: at least a millisecond (its unit), at most
/// [`MAX_TIMEOUT`].
fn check_timeout(timeout: Duration) -> Result<()> {
    let invalid = |reason: String| Error::InvalidParameter {
        parameter: "timeout".into(),
        reason,
    };
    if timeout.is_zero() {
        return Err(invalid("expected a positive interval, found 0".into()));
    }
    if timeout < Duration::from_millis(1) {
        return Err(invalid(format!(
            "expected at least 1ms, found {}µs",
            timeout.as_micros()
        )));
    }
    if timeout > MAX_TIMEOUT {
        return Err(invalid(format!(
            "expected at most {} (about 24.8 days, librdkafka's limit), found {}",
            crate::error::format_duration(MAX_TIMEOUT),
            crate::error::format_duration(timeout)
        )));
    }
    Ok(())
}

/// Ask librdkafka whether it knows `key` and accepts `value`, so that a typo fails before
/// any client is made, naming the property. Credentials are not repeated in the message.
fn check_property(key: &str, value: &str) -> Result<()> {
    let mut config = ClientConfig::new();
    config.set(key, value);
    let Err(error) = config.create_native_config() else {
        return Ok(());
    };
    let reason = match error {
        KafkaError::ClientConfig(RDKafkaConfRes::RD_KAFKA_CONF_UNKNOWN, ..) => format!(
            "'{key}' is not a librdkafka property (config takes librdkafka consumer \
             properties such as 'client.id', 'security.protocol' or 'fetch.max.bytes')"
        ),
        KafkaError::ClientConfig(_, description, ..) => {
            let shown = if is_secret_property(key) {
                "***"
            } else {
                value
            };
            let description = if is_secret_property(key) && !value.is_empty() {
                description.replace(value, "***")
            } else {
                description
            };
            format!("librdkafka refuses '{shown}' for property '{key}': {description}")
        }
        other => format!("librdkafka refuses property '{key}': {other}"),
    };
    Err(Error::InvalidParameter {
        parameter: "config".into(),
        reason,
    })
}

/// Pick the bootstrap list: the `brokers` parameter, else the `bootstrap.servers` property, else
/// the environment, else [`DEFAULT_BROKERS`]; then check its shape.
fn resolve_brokers(
    parameter: Option<String>,
    from_config: Option<(String, String)>,
    from_env: Option<String>,
) -> Result<String> {
    let (name, raw) = match (parameter, from_config) {
        (Some(parameter), Some((key, configured))) => {
            let parameter = normalize_broker_list("brokers", &parameter)?;
            let configured = normalize_broker_list(&format!("config '{key}'"), &configured)?;
            if parameter != configured {
                return Err(Error::InvalidParameter {
                    parameter: "brokers".into(),
                    reason: format!(
                        "'{parameter}' contradicts config '{key}' = '{configured}'; give the brokers once"
                    ),
                });
            }
            return Ok(parameter);
        }
        (Some(parameter), None) => ("brokers".to_owned(), parameter),
        (None, Some((key, configured))) => (format!("config '{key}'"), configured),
        (None, None) => match from_env.filter(|value| !value.trim().is_empty()) {
            Some(value) => (BROKERS_ENV.to_owned(), value),
            None => ("brokers".to_owned(), DEFAULT_BROKERS.to_owned()),
        },
    };
    normalize_broker_list(&name, &raw)
}

/// Check a `host:port[,host:port…]` list and return it without stray spaces.
fn normalize_broker_list(parameter: &str, raw: &str) -> Result<String> {
    let invalid = |reason: String| Error::InvalidParameter {
        parameter: parameter.to_owned(),
        reason,
    };
    if raw.trim().is_empty() {
        return Err(invalid(
            "expected a comma-separated list of host:port, found an empty string".into(),
        ));
    }
    let mut brokers = Vec::new();
    for entry in raw.split(',') {
        let entry = entry.trim();
        if entry.is_empty() {
            return Err(invalid(format!(
                "expected a comma-separated list of host:port, found an empty entry in '{raw}'"
            )));
        }
        // librdkafka accepts an optional `protocol://` prefix on each entry, and skips an
        // entry with a protocol it doesn't know (the scan would then wait for its timeout).
        let address = match entry.split_once("://") {
            None => entry,
            Some((protocol, rest)) => {
                if !BROKER_PROTOCOLS
                    .iter()
                    .any(|known| known.eq_ignore_ascii_case(protocol))
                {
                    return Err(invalid(format!(
                        "expected host:port or PROTOCOL://host:port with PROTOCOL one of {}, \
                         found '{entry}'",
                        BROKER_PROTOCOLS.join(", ")
                    )));
                }
                rest
            }
        };
        let Some((host, port)) = address.rsplit_once(':') else {
            return Err(invalid(format!(
                "expected host:port, found '{entry}' without a port"
            )));
        };
        let host_ok = !host.is_empty()
            && (host.starts_with('[') && host.ends_with(']')
                || !host.contains(|c: char| c.is_whitespace() || c == '/' || c == ':'));
        if !host_ok {
            return Err(invalid(format!(
                "expected host:port, found '{entry}' with an invalid host"
            )));
        }
        match port.parse::<u16>() {
            Ok(port) if port > 0 => {}
            _ => {
                return Err(invalid(format!(
                    "expected host:port with a port in 1..65535, found '{entry}'"
                )))
            }
        }
        brokers.push(entry);
    }
    Ok(brokers.join(","))
}

/// Whether a librdkafka property holds a credential that must never be shown: every
/// password, passphrase, secret, token and private key (`ssl.key.pem`,
/// `sasl.oauthbearer.assertion.private.key.pem`, ...), matched on the name so that aliases
/// and future properties are covered too.
pub(crate) fn is_secret_property(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "passphrase",
        "secret",
        "token",
        "sasl.oauthbearer.config",
        "key.pem",
        "ssl_key",
    ]
    .iter()
    .any(|marker| key.contains(marker))
}

/// Convert a duration given in microseconds (DuckDB's INTERVAL unit) for `parameter`,
/// refusing negative values.
pub fn duration_from_micros(parameter: &str, micros: i64) -> Result<Duration> {
    u64::try_from(micros)
        .map(Duration::from_micros)
        .map_err(|_| Error::InvalidParameter {
            parameter: parameter.to_owned(),
            reason: format!(
                "expected a non-negative interval, found -{}",
                crate::error::format_duration(Duration::from_micros(micros.unsigned_abs()))
            ),
        })
}

/// `micros` microseconds as a duration that must be positive: an interval between two
/// actions (`metadata_refresh`), where zero would mean "all the time".
///
/// # Errors
/// [`Error::InvalidParameter`] naming `parameter` when `micros` is zero or negative.
pub fn positive_duration_from_micros(parameter: &str, micros: i64) -> Result<Duration> {
    if micros > 0 {
        return duration_from_micros(parameter, micros);
    }
    Err(Error::InvalidParameter {
        parameter: parameter.to_owned(),
        reason: format!(
            "expected a positive interval, found {}{}",
            if micros < 0 { "-" } else { "" },
            crate::error::format_duration(Duration::from_micros(micros.unsigned_abs()))
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(builder: ClientSettingsBuilder) -> Result<ClientSettings> {
        builder.brokers_from_env(None).build()
    }

    #[test]
    fn test_tls_without_ca_probes_the_system_bundle() {
        let get = |properties: &[(&str, &str)]| {
            let mut builder = ClientSettings::builder();
            for &(key, value) in properties {
                builder = builder.property(key, value);
            }
            build(builder)
                .unwrap()
                .client_config()
                .get("ssl.ca.location")
                .map(str::to_owned)
        };
        assert_eq!(get(&[]), None);
        assert_eq!(get(&[("security.protocol", "plaintext")]), None);
        assert_eq!(
            get(&[("security.protocol", "SASL_SSL")]).as_deref(),
            Some("probe")
        );
        assert_eq!(
            get(&[("security.protocol", "ssl")]).as_deref(),
            Some("probe")
        );
        let own = [("security.protocol", "ssl"), ("ssl.ca.location", "/ca.pem")];
        assert_eq!(get(&own).as_deref(), Some("/ca.pem"));
        let pem = [("security.protocol", "ssl"), ("ssl.ca.pem", "-----BEGIN")];
        assert_eq!(get(&pem), None);
    }

    #[test]
    fn test_settings_defaults() {
        let settings = build(ClientSettings::builder()).unwrap();
        assert_eq!(settings.brokers(), DEFAULT_BROKERS);
        assert_eq!(settings.timeout(), DEFAULT_TIMEOUT);
    }

    #[test]
    fn test_settings_broker_precedence() {
        let from_env = ClientSettings::builder()
            .brokers_from_env(Some("env:1".into()))
            .build()
            .unwrap();
        assert_eq!(from_env.brokers(), "env:1");

        let from_config = ClientSettings::builder()
            .brokers_from_env(Some("env:1".into()))
            .property("bootstrap.servers", "conf:2")
            .build()
            .unwrap();
        assert_eq!(from_config.brokers(), "conf:2");

        let from_parameter = ClientSettings::builder()
            .brokers_from_env(Some("env:1".into()))
            .brokers("param:3")
            .build()
            .unwrap();
        assert_eq!(from_parameter.brokers(), "param:3");
    }

    #[test]
    fn test_settings_brokers_conflicting_with_config() {
        let error = build(
            ClientSettings::builder()
                .brokers("a:1")
                .property("bootstrap.servers", "b:2"),
        )
        .unwrap_err();
        assert!(error
            .to_string()
            .contains("contradicts config 'bootstrap.servers'"));

        // The same list given twice is fine.
        let same = build(
            ClientSettings::builder()
                .brokers("a:1, b:2")
                .property("bootstrap.servers", "a:1,b:2"),
        )
        .unwrap();
        assert_eq!(same.brokers(), "a:1,b:2");
    }

    #[test]
    fn test_settings_malformed_brokers() {
        for bad in [
            "",
            " ",
            "localhost",
            "a:1,,b:2",
            "a:0",
            "a:99999",
            "a:x",
            ":9092",
            "a b:1",
        ] {
            let error = build(ClientSettings::builder().brokers(bad)).unwrap_err();
            let text = error.to_string();
            assert!(text.starts_with("invalid brokers:"), "{bad:?} gave {text}");
        }
        for good in [
            "127.0.0.1:19092",
            "a:1,b:2",
            "[::1]:9092",
            "SASL_SSL://h:9093",
        ] {
            build(ClientSettings::builder().brokers(good)).unwrap();
        }
    }

    #[test]
    fn test_settings_side_effects_refused() {
        for key in [
            "enable.auto.commit",
            "enable.auto.offset.store",
            "allow.auto.create.topics",
        ] {
            let error = build(ClientSettings::builder().property(key, "true")).unwrap_err();
            assert!(
                matches!(&error, Error::ForbiddenConfig { key: k, .. } if k == key),
                "{error}"
            );
            // Saying what kafkars does anyway is allowed.
            build(ClientSettings::builder().property(key, "FALSE")).unwrap();
        }
    }

    #[test]
    fn test_settings_client_config_pins_side_effects_off() {
        let settings = build(
            ClientSettings::builder()
                .brokers("h:1")
                .property("client.id", "me")
                .property("enable.auto.commit", "false"),
        )
        .unwrap();
        let config = settings.client_config();
        assert_eq!(config.get("bootstrap.servers"), Some("h:1"));
        assert_eq!(config.get("client.id"), Some("me"));
        assert_eq!(config.get("enable.auto.commit"), Some("false"));
        assert_eq!(config.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(config.get("allow.auto.create.topics"), Some("false"));
    }

    #[test]
    fn test_settings_zero_timeout_refused() {
        let error = build(ClientSettings::builder().timeout(Duration::ZERO)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid timeout: expected a positive interval, found 0"
        );
    }

    #[test]
    fn test_settings_timeout_bounds() {
        let text = |timeout: Duration| {
            build(ClientSettings::builder().timeout(timeout))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            text(Duration::from_micros(1)),
            "invalid timeout: expected at least 1ms, found 1µs"
        );
        assert_eq!(
            text(Duration::from_secs(30 * 86_400)),
            "invalid timeout: expected at most 2147483.647s (about 24.8 days, librdkafka's \
             limit), found 2592000s"
        );
        build(ClientSettings::builder().timeout(MAX_TIMEOUT)).unwrap();
        build(ClientSettings::builder().timeout(Duration::from_millis(1))).unwrap();
    }

    #[test]
    fn test_settings_unknown_or_refused_property() {
        let text = |key: &str, value: &str| {
            build(ClientSettings::builder().property(key, value))
                .unwrap_err()
                .to_string()
        };
        let unknown = text("no.such.property", "x");
        assert!(
            unknown.starts_with("invalid config: 'no.such.property' is not a librdkafka property"),
            "{unknown}"
        );
        let refused = text("security.protocol", "bogus");
        assert!(
            refused.starts_with(
                "invalid config: librdkafka refuses 'bogus' for property 'security.protocol'"
            ),
            "{refused}"
        );
        build(ClientSettings::builder().property("client.id", "me")).unwrap();
    }

    #[test]
    fn test_settings_broker_protocols() {
        build(ClientSettings::builder().brokers("plaintext://h:1,SASL_SSL://g:2")).unwrap();
        let error = build(ClientSettings::builder().brokers("http://h:1"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "invalid brokers: expected host:port or PROTOCOL://host:port with PROTOCOL one of \
             PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL, found 'http://h:1'"
        );
    }

    #[test]
    fn test_settings_debug_and_redact_hide_credentials() {
        let settings = build(
            ClientSettings::builder()
                .property("sasl.username", "alice")
                .property("sasl.password", "hunter2")
                .property("ssl.key.password", "s3cr3t"),
        )
        .unwrap();
        let debug = format!("{settings:?}");
        assert!(debug.contains("alice"), "{debug}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("s3cr3t"),
            "{debug}"
        );
        assert_eq!(
            settings.redact("bad value hunter2 and s3cr3t"),
            "bad value *** and ***"
        );
    }

    #[test]
    fn test_settings_secret_properties_cover_librdkafka_sensitive_ones() {
        for key in [
            "sasl.password",
            "ssl.key.password",
            "ssl.keystore.password",
            "ssl.key.pem",
            "sasl.oauthbearer.config",
            "sasl.oauthbearer.client.secret",
            "sasl.oauthbearer.client.credentials.client.secret",
            "sasl.oauthbearer.assertion.private.key.passphrase",
            "sasl.oauthbearer.assertion.private.key.pem",
            "SASL.PASSWORD",
        ] {
            assert!(is_secret_property(key), "{key}");
        }
        for key in [
            "sasl.username",
            "sasl.mechanism",
            "ssl.ca.location",
            "client.id",
        ] {
            assert!(!is_secret_property(key), "{key}");
        }
    }

    #[test]
    fn test_duration_from_micros() {
        assert_eq!(
            duration_from_micros("timeout", 3_000_000).unwrap(),
            Duration::from_secs(3)
        );
        let error = duration_from_micros("lookback", -2_000_000).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid lookback: expected a non-negative interval, found -2s"
        );
        assert_eq!(
            positive_duration_from_micros("metadata_refresh", 500_000).unwrap(),
            Duration::from_millis(500)
        );
        for (micros, found) in [(0, "0s"), (-1_500_000, "-1.5s"), (-250_000, "-250ms")] {
            assert_eq!(
                positive_duration_from_micros("metadata_refresh", micros)
                    .unwrap_err()
                    .to_string(),
                format!("invalid metadata_refresh: expected a positive interval, found {found}")
            );
        }
    }
}
