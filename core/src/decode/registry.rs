//! A client of Confluent's Schema Registry REST API (and the registries that speak it:
//! Apicurio's `/apis/ccompat/v7`, Redpanda, Karapace).
//!
//! Only what reading needs: a schema by id (`GET /schemas/ids/{id}`), a subject's latest or
//! given version (`GET /subjects/{subject}/versions/{version}`). Every schema is fetched once
//! per client and cached by id, so a scan asks once per schema id, never once per record.
//!
//! `schema_registry_config` keys follow confluent-kafka's `SchemaRegistryClient`:
//!
//! | key | meaning |
//! |---|---|
//! | `basic.auth.user.info` | `user:password` for HTTP basic auth (secret) |
//! | `basic.auth.credentials.source` | `USER_INFO` (default) or `URL` (user info in the URL) |
//! | `bearer.auth.token` | a bearer token (secret) |
//! | `ssl.ca.location` | PEM file of the CAs that sign the registry's certificate |
//! | `ssl.certificate.location` / `ssl.key.location` | PEM client certificate and key (mTLS) |
//! | `timeout.ms` | per request, in ms (default: the scan's `timeout`) |

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::Value as Json;
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};

use crate::error::{format_duration, Error, Result};
use crate::settings::DEFAULT_TIMEOUT;

const PARAMETER: &str = "schema_registry_config";
/// Keys of `schema_registry_config`, in the order error messages list them.
const KEYS: [&str; 7] = [
    "basic.auth.user.info",
    "basic.auth.credentials.source",
    "bearer.auth.token",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "timeout.ms",
];
/// Responses larger than this are refused: a schema is kilobytes.
const MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;

/// How to reach a registry. Its `Debug` output hides the credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistrySettings {
    /// The base URL without user info and without a trailing slash.
    url: String,
    /// `Authorization` header value, if any (secret).
    authorization: Option<String>,
    ca_location: Option<String>,
    client_cert: Option<(String, String)>,
    timeout: Duration,
}

impl std::fmt::Debug for RegistrySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistrySettings")
            .field("url", &self.url)
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "[redacted]"),
            )
            .field("ca_location", &self.ca_location)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RegistrySettings {
    /// Check `url` (`http://host:port[/path]` or `https://…`, optionally with
    /// `user:password@`) and `config` (the keys above); `timeout` bounds every request
    /// (default 30 s) unless `timeout.ms` is given.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming `schema_registry` or `schema_registry_config`.
    pub fn new(url: &str, config: &[(String, String)], timeout: Option<Duration>) -> Result<Self> {
        let trimmed = url.trim();
        let (scheme, rest) = trimmed.split_once("://").ok_or_else(|| {
            invalid(
                "schema_registry",
                format!(
                    "expected a URL such as http://host:8081, found '{}'",
                    redact_url(trimmed)
                ),
            )
        })?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(invalid(
                "schema_registry",
                format!("expected an http:// or https:// URL, found scheme '{scheme}'"),
            ));
        }
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (user_info, host) = match authority.rsplit_once('@') {
            Some((user_info, host)) => (Some(user_info), host),
            None => (None, authority),
        };
        if host.is_empty() {
            return Err(invalid(
                "schema_registry",
                format!("the URL '{}' has no host", redact_url(trimmed)),
            ));
        }
        let path = path.trim_end_matches('/');
        let url = if path.is_empty() {
            format!("{scheme}://{host}")
        } else {
            format!("{scheme}://{host}/{path}")
        };

        let mut settings = Self {
            url,
            authorization: None,
            ca_location: None,
            client_cert: None,
            timeout: timeout.unwrap_or(DEFAULT_TIMEOUT),
        };
        let mut values: HashMap<&str, &str> = HashMap::new();
        for (key, value) in config {
            let key = key.trim();
            let Some(known) = KEYS.iter().find(|k| **k == key) else {
                return Err(invalid(
                    PARAMETER,
                    format!(
                        "unknown key '{key}'; expected one of {}",
                        KEYS.map(|k| format!("'{k}'")).join(", ")
                    ),
                ));
            };
            values.insert(known, value.as_str());
        }
        let source = values
            .get("basic.auth.credentials.source")
            .map(|s| s.trim().to_ascii_uppercase())
            .unwrap_or_else(|| "USER_INFO".into());
        let user_info = match source.as_str() {
            "USER_INFO" => values
                .get("basic.auth.user.info")
                .map(|s| s.to_string())
                .or(
                    // confluent-kafka takes user info from the URL too when no key is given.
                    user_info.map(percent_decode),
                ),
            "URL" => user_info.map(percent_decode),
            other => {
                return Err(invalid(
                    PARAMETER,
                    format!(
                    "'basic.auth.credentials.source' must be 'USER_INFO' or 'URL', found '{other}'"
                ),
                ))
            }
        };
        if let Some(user_info) = user_info {
            if !user_info.contains(':') {
                return Err(invalid(
                    PARAMETER,
                    "'basic.auth.user.info' must be 'user:password'".into(),
                ));
            }
            let encoded = base64::engine::general_purpose::STANDARD.encode(user_info.as_bytes());
            settings.authorization = Some(format!("Basic {encoded}"));
        }
        if let Some(token) = values.get("bearer.auth.token") {
            if settings.authorization.is_some() {
                return Err(invalid(
                    PARAMETER,
                    "give either basic auth or 'bearer.auth.token', not both".into(),
                ));
            }
            settings.authorization = Some(format!("Bearer {}", token.trim()));
        }
        settings.ca_location = values.get("ssl.ca.location").map(|s| s.to_string());
        match (
            values.get("ssl.certificate.location"),
            values.get("ssl.key.location"),
        ) {
            (Some(cert), Some(key)) => {
                settings.client_cert = Some((cert.to_string(), key.to_string()));
            }
            (None, None) => {}
            _ => {
                return Err(invalid(
                    PARAMETER,
                    "'ssl.certificate.location' and 'ssl.key.location' go together".into(),
                ))
            }
        }
        if let Some(ms) = values.get("timeout.ms") {
            let ms: u64 = ms.trim().parse().ok().filter(|ms| *ms > 0).ok_or_else(|| {
                invalid(
                    PARAMETER,
                    format!("'timeout.ms' must be a positive number of milliseconds, found '{ms}'"),
                )
            })?;
            settings.timeout = Duration::from_millis(ms);
        }
        Ok(settings)
    }

    /// The base URL, without credentials.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How long one request may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// The kind of a registered schema (`schemaType`; absent means Avro).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaType {
    /// Apache Avro (JSON schema text).
    Avro,
    /// Protocol Buffers (`.proto` text, or a base64 `FileDescriptorProto` from some registries).
    Protobuf,
    /// JSON Schema.
    Json,
}

impl SchemaType {
    fn parse(name: Option<&str>) -> std::result::Result<Self, String> {
        match name.map(str::to_ascii_uppercase).as_deref() {
            None | Some("AVRO") => Ok(Self::Avro),
            Some("PROTOBUF") => Ok(Self::Protobuf),
            Some("JSON") => Ok(Self::Json),
            Some(other) => Err(format!("unknown schemaType '{other}'")),
        }
    }

    /// The format name users write for it.
    pub fn format_name(self) -> &'static str {
        match self {
            Self::Avro => "avro",
            Self::Protobuf => "protobuf",
            Self::Json => "json",
        }
    }
}

/// A reference from one schema to another (a Protobuf import, an Avro named type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaReference {
    /// The name the referring schema uses (`other.proto`, a type name).
    pub name: String,
    /// The subject holding the referenced schema.
    pub subject: String,
    /// Its version.
    pub version: i64,
}

/// A schema as the registry holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredSchema {
    /// Its global id.
    pub id: u32,
    /// Avro, Protobuf or JSON Schema.
    pub schema_type: SchemaType,
    /// The schema text as returned.
    pub schema: String,
    /// The schemas it refers to.
    pub references: Vec<SchemaReference>,
}

/// A registry client with a per-client cache of schemas by id.
pub struct SchemaRegistry {
    settings: RegistrySettings,
    agent: ureq::Agent,
    by_id: Mutex<HashMap<u32, Arc<RegisteredSchema>>>,
}

impl std::fmt::Debug for SchemaRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaRegistry")
            .field("settings", &self.settings)
            .finish()
    }
}

impl SchemaRegistry {
    /// A client for `settings`. Sends nothing yet.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming `schema_registry_config` when a certificate or key
    /// file can't be read.
    pub fn connect(settings: RegistrySettings) -> Result<Self> {
        let mut tls = TlsConfig::builder();
        if let Some(location) = &settings.ca_location {
            let pem = read_file("ssl.ca.location", location)?;
            let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(cert)) => Some(cert),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(invalid(
                    PARAMETER,
                    format!("'ssl.ca.location' file '{location}' holds no PEM certificate"),
                ));
            }
            tls = tls.root_certs(RootCerts::new_with_certs(&certs));
        }
        if let Some((cert_location, key_location)) = &settings.client_cert {
            let cert_pem = read_file("ssl.certificate.location", cert_location)?;
            let key_pem = read_file("ssl.key.location", key_location)?;
            let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(&cert_pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(cert)) => Some(cert),
                    _ => None,
                })
                .collect();
            let key = PrivateKey::from_pem(&key_pem).map_err(|error| {
                invalid(
                    PARAMETER,
                    format!("'ssl.key.location' file '{key_location}': {error}"),
                )
            })?;
            tls = tls.client_cert(Some(ClientCert::new_with_certs(&certs, key)));
        }
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(settings.timeout))
            // Error statuses carry the registry's JSON explanation: read it, don't drop it.
            .http_status_as_error(false)
            .tls_config(tls.build())
            .user_agent(concat!("kafkars/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Self {
            settings,
            agent,
            by_id: Mutex::new(HashMap::new()),
        })
    }

    /// The base URL, without credentials.
    pub fn url(&self) -> &str {
        self.settings.url()
    }

    /// The schema with global id `id` (cached).
    ///
    /// # Errors
    /// [`Error::Registry`] when the registry can't be reached or has no such id.
    pub fn schema_by_id(&self, id: u32) -> Result<Arc<RegisteredSchema>> {
        if let Some(schema) = self.cache().get(&id) {
            return Ok(schema.clone());
        }
        self.try_schema_by_id(id)?
            .ok_or_else(|| self.error(format!("schema id {id} not found (HTTP 404)")))
    }

    /// The schema with global id `id` (cached), or `None` when the registry has no such id:
    /// a record naming an unknown id is that record's problem, not the scan's.
    ///
    /// # Errors
    /// [`Error::Registry`] when the registry can't be reached or answers with an error other
    /// than "not found".
    pub fn try_schema_by_id(&self, id: u32) -> Result<Option<Arc<RegisteredSchema>>> {
        if let Some(schema) = self.cache().get(&id) {
            return Ok(Some(schema.clone()));
        }
        let Some(body) = self.get(
            &format!("/schemas/ids/{id}"),
            &format!("schema id {id}"),
            true,
        )?
        else {
            return Ok(None);
        };
        let schema = Arc::new(self.parse_schema(&body, Some(id))?);
        self.cache().insert(id, schema.clone());
        Ok(Some(schema))
    }

    /// The latest version of `subject`.
    ///
    /// # Errors
    /// [`Error::Registry`] when the registry can't be reached or has no such subject.
    pub fn latest(&self, subject: &str) -> Result<Arc<RegisteredSchema>> {
        self.version(subject, "latest")
    }

    /// Version `version` (a number or `latest`) of `subject`.
    ///
    /// # Errors
    /// [`Error::Registry`] when the registry can't be reached or has no such version.
    pub fn version(&self, subject: &str, version: &str) -> Result<Arc<RegisteredSchema>> {
        let path = format!(
            "/subjects/{}/versions/{}",
            percent_encode(subject),
            percent_encode(version)
        );
        let what = if version == "latest" {
            format!("subject '{subject}'")
        } else {
            format!("subject '{subject}' version {version}")
        };
        let body = self
            .get(&path, &what, false)?
            .ok_or_else(|| self.error(format!("{what} not found")))?;
        let schema = Arc::new(self.parse_schema(&body, None)?);
        Ok(self
            .cache()
            .entry(schema.id)
            .or_insert_with(|| schema.clone())
            .clone())
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Arc<RegisteredSchema>>> {
        self.by_id
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// GET `path` under the base URL; `what` names the thing asked for in errors. With
    /// `missing_ok`, "not found" is `None` rather than an error.
    fn get(&self, path: &str, what: &str, missing_ok: bool) -> Result<Option<Json>> {
        let url = format!("{}{path}", self.settings.url);
        let mut request = self.agent.get(&url).header(
            "Accept",
            "application/vnd.schemaregistry.v1+json, application/json",
        );
        if let Some(authorization) = &self.settings.authorization {
            request = request.header("Authorization", authorization);
        }
        let mut response = request
            .call()
            .map_err(|error| self.transport_error(error))?;
        let status = response.status().as_u16();
        let mut text = String::new();
        response
            .body_mut()
            .as_reader()
            .take(MAX_RESPONSE_BYTES)
            .read_to_string(&mut text)
            .map_err(|error| {
                self.error(format!("reading the answer for {what} failed: {error}"))
            })?;
        let json: Option<Json> = serde_json::from_str(&text).ok();
        if status == 404 && missing_ok {
            return Ok(None);
        }
        if (200..300).contains(&status) {
            return json.map(Some).ok_or_else(|| {
                self.error(format!(
                    "the answer for {what} is not JSON (is {} a Schema Registry? Apicurio serves \
                     the Confluent API under /apis/ccompat/v7)",
                    self.settings.url
                ))
            });
        }
        let message = json
            .as_ref()
            .and_then(|json| json.get("message"))
            .and_then(Json::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| text.chars().take(200).collect());
        let code = json
            .as_ref()
            .and_then(|json| json.get("error_code"))
            .and_then(Json::as_i64);
        let reason = match status {
            401 | 403 => format!(
                "HTTP {status}: not authorized to read {what} (check schema_registry_config \
                 'basic.auth.user.info')"
            ),
            404 => format!(
                "{what} not found (HTTP 404{}{})",
                code.map(|c| format!(", error {c}")).unwrap_or_default(),
                if message.is_empty() {
                    String::new()
                } else {
                    format!(": {message}")
                }
            ),
            _ => format!("HTTP {status} for {what}: {message}"),
        };
        Err(self.error(reason))
    }

    fn parse_schema(&self, json: &Json, id: Option<u32>) -> Result<RegisteredSchema> {
        let malformed = |what: &str| self.error(format!("malformed registry answer: {what}"));
        let schema = json
            .get("schema")
            .and_then(Json::as_str)
            .ok_or_else(|| malformed("no 'schema' text"))?
            .to_owned();
        let id = match id {
            Some(id) => id,
            None => json
                .get("id")
                .and_then(Json::as_u64)
                .and_then(|id| u32::try_from(id).ok())
                .ok_or_else(|| malformed("no schema 'id'"))?,
        };
        let schema_type = SchemaType::parse(json.get("schemaType").and_then(Json::as_str))
            .map_err(|reason| malformed(&reason))?;
        let references = json
            .get("references")
            .and_then(Json::as_array)
            .map(|references| {
                references
                    .iter()
                    .map(|reference| {
                        Some(SchemaReference {
                            name: reference.get("name")?.as_str()?.to_owned(),
                            subject: reference.get("subject")?.as_str()?.to_owned(),
                            version: reference.get("version")?.as_i64()?,
                        })
                    })
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| malformed("a reference lacks name, subject or version"))
            })
            .transpose()?
            .unwrap_or_default();
        Ok(RegisteredSchema {
            id,
            schema_type,
            schema,
            references,
        })
    }

    fn transport_error(&self, error: ureq::Error) -> Error {
        let reason = match &error {
            ureq::Error::Timeout(_) => format!(
                "no answer within {} (check schema_registry and that the registry is running)",
                format_duration(self.settings.timeout)
            ),
            ureq::Error::Io(io) => format!(
                "could not connect: {io} (check schema_registry and that the registry is running)"
            ),
            ureq::Error::HostNotFound => {
                "host not found (check the schema_registry URL)".to_owned()
            }
            ureq::Error::Tls(_) | ureq::Error::Rustls(_) => format!(
                "TLS handshake failed: {error} (set schema_registry_config 'ssl.ca.location' to \
                 the CA that signed the registry's certificate)"
            ),
            other => other.to_string(),
        };
        self.error(reason)
    }

    fn error(&self, reason: String) -> Error {
        Error::Registry {
            url: self.settings.url.clone(),
            reason,
        }
    }
}

fn read_file(key: &str, location: &str) -> Result<Vec<u8>> {
    std::fs::read(location)
        .map_err(|error| invalid(PARAMETER, format!("'{key}' file '{location}': {error}")))
}

fn invalid(parameter: &str, reason: String) -> Error {
    Error::InvalidParameter {
        parameter: parameter.to_owned(),
        reason,
    }
}

/// A URL with any `user:password@` removed, for messages.
fn redact_url(url: &str) -> String {
    let start = url.find("://").map_or(0, |end| end + 3);
    match url[start..].rfind('@') {
        Some(at) => format!("{}[redacted]@{}", &url[..start], &url[start + at + 1..]),
        None => url.to_owned(),
    }
}

/// Percent-encode a path segment (RFC 3986: everything but unreserved characters).
fn percent_encode(segment: &str) -> String {
    let mut encoded = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(byte) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                decoded.push(byte);
                i += 3;
                continue;
            }
        }
        decoded.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn test_settings_url_forms() {
        let settings =
            RegistrySettings::new("http://127.0.0.1:18081/apis/ccompat/v7/", &[], None).unwrap();
        assert_eq!(settings.url(), "http://127.0.0.1:18081/apis/ccompat/v7");
        let error = RegistrySettings::new("127.0.0.1:8081", &[], None)
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("invalid schema_registry: expected a URL"),
            "{error}"
        );
        let error = RegistrySettings::new("ftp://h", &[], None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("scheme 'ftp'"), "{error}");
    }

    #[test]
    fn test_settings_user_info_never_shown() {
        let settings =
            RegistrySettings::new("https://alice:s3cret@registry:8081", &[], None).unwrap();
        assert_eq!(settings.url(), "https://registry:8081");
        assert!(settings.authorization.is_some());
        assert!(!format!("{settings:?}").contains("s3cret"));
        let error = RegistrySettings::new("alice:s3cret@registry", &[], None)
            .unwrap_err()
            .to_string();
        assert!(!error.contains("s3cret"), "{error}");
    }

    #[test]
    fn test_settings_config_keys() {
        let settings = RegistrySettings::new(
            "http://r",
            &config(&[("basic.auth.user.info", "u:p"), ("timeout.ms", "1500")]),
            None,
        )
        .unwrap();
        assert_eq!(settings.timeout(), Duration::from_millis(1500));
        assert_eq!(settings.authorization.as_deref(), Some("Basic dTpw"));
        let error = RegistrySettings::new("http://r", &config(&[("colour", "red")]), None)
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("invalid schema_registry_config: unknown key 'colour'"),
            "{error}"
        );
        let error = RegistrySettings::new(
            "http://r",
            &config(&[("basic.auth.user.info", "nopassword")]),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("'user:password'"), "{error}");
    }

    #[test]
    fn test_percent_encoding() {
        assert_eq!(percent_encode("orders-value"), "orders-value");
        assert_eq!(percent_encode("a b/c"), "a%20b%2Fc");
        assert_eq!(percent_decode("p%40ss"), "p@ss");
        assert_eq!(percent_decode("100%"), "100%");
    }

    #[test]
    fn test_unreachable_registry_names_url() {
        let settings =
            RegistrySettings::new("http://127.0.0.1:1", &[], Some(Duration::from_secs(2))).unwrap();
        let registry = SchemaRegistry::connect(settings).unwrap();
        let error = registry.latest("t-value").unwrap_err().to_string();
        assert!(
            error.starts_with("Schema Registry http://127.0.0.1:1: could not connect"),
            "{error}"
        );
    }
}
