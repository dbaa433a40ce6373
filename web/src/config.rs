//! Configuration: defaults, then `parley.toml`, then environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Parley's settings. Secrets never appear in `Debug` output.
#[derive(Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; `None`: SQLite in the data dir.
    pub database_url: Option<String>,
    pub public_url: Option<String>,
    pub admin_email: Option<String>,
    pub admin_password: Option<String>,
    pub smtp_url: Option<String>,
    /// The sender of every email (`Name <address>`); each email shows the
    /// workspace's or teammate's name.
    pub email_from: String,
    pub email_fallback_delay: Duration,
    pub meili_url: Option<String>,
    pub meili_key: Option<String>,
    /// Log as JSON lines (for log shippers) instead of human-readable text.
    pub log_json: bool,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "<hidden>");
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("data_dir", &self.data_dir)
            .field("database_url", &hidden(&self.database_url))
            .field("public_url", &self.public_url)
            .field("admin_email", &self.admin_email)
            .field("admin_password", &hidden(&self.admin_password))
            .field("smtp_url", &hidden(&self.smtp_url))
            .field("email_from", &self.email_from)
            .field("email_fallback_delay", &self.email_fallback_delay)
            .field("meili_url", &self.meili_url)
            .field("meili_key", &hidden(&self.meili_key))
            .field("log_json", &self.log_json)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./parley-data"),
            database_url: None,
            public_url: None,
            admin_email: None,
            admin_password: None,
            smtp_url: None,
            email_from: parley_engine::mail::DEFAULT_FROM.to_owned(),
            email_fallback_delay: Duration::from_secs(600),
            meili_url: None,
            meili_key: None,
            log_json: false,
        }
    }
}

/// `parley.toml`: every key optional, grouped in sections.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    server: FileServer,
    #[serde(default)]
    database: FileDatabase,
    #[serde(default)]
    admin: FileAdmin,
    #[serde(default)]
    email: FileEmail,
    #[serde(default)]
    search: FileSearch,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileServer {
    bind: Option<String>,
    data_dir: Option<PathBuf>,
    public_url: Option<String>,
    log_json: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileDatabase {
    url: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileAdmin {
    email: Option<String>,
    password: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileEmail {
    smtp_url: Option<String>,
    from: Option<String>,
    fallback_delay: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileSearch {
    meili_url: Option<String>,
    meili_key: Option<String>,
}

/// Parses `10m`, `5s`, `1h`, `250ms` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    match unit.trim() {
        "" | "s" => Some(Duration::from_secs(n)),
        "ms" => Some(Duration::from_millis(n)),
        "m" => Some(Duration::from_secs(n * 60)),
        "h" => Some(Duration::from_secs(n * 3600)),
        _ => None,
    }
}

impl Config {
    /// Loads defaults, then `file` (or `./parley.toml` when present), then the
    /// environment given by `env` (a lookup, so tests need not touch the process env).
    pub fn load(file: Option<&std::path::Path>, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Config> {
        let mut c = Config::default();
        let path = file.map(PathBuf::from).or_else(|| {
            let p = PathBuf::from("parley.toml");
            p.exists().then_some(p)
        });
        if let Some(path) = path {
            let text = std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
            let f: FileConfig = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            if let Some(b) = f.server.bind {
                c.bind = b.parse().map_err(|e| anyhow::anyhow!("server.bind {b:?}: {e}"))?;
            }
            c.data_dir = f.server.data_dir.unwrap_or(c.data_dir);
            c.public_url = f.server.public_url.or(c.public_url);
            c.log_json = f.server.log_json.unwrap_or(c.log_json);
            c.database_url = f.database.url.or(c.database_url);
            c.admin_email = f.admin.email.or(c.admin_email);
            c.admin_password = f.admin.password.or(c.admin_password);
            c.smtp_url = f.email.smtp_url.or(c.smtp_url);
            c.email_from = f.email.from.unwrap_or(c.email_from);
            if let Some(d) = f.email.fallback_delay {
                c.email_fallback_delay =
                    parse_duration(&d).ok_or_else(|| anyhow::anyhow!("email.fallback_delay {d:?}: use e.g. 10m or 5s"))?;
            }
            c.meili_url = f.search.meili_url.or(c.meili_url);
            c.meili_key = f.search.meili_key.or(c.meili_key);
        }
        let get = |k: &str| env(k).filter(|v| !v.is_empty());
        if let Some(b) = get("PARLEY_BIND") {
            c.bind = b.parse().map_err(|e| anyhow::anyhow!("PARLEY_BIND {b:?}: {e}"))?;
        }
        if let Some(d) = get("PARLEY_DATA_DIR") {
            c.data_dir = PathBuf::from(d);
        }
        c.database_url = get("DATABASE_URL").or(c.database_url);
        c.public_url = get("PARLEY_PUBLIC_URL").or(c.public_url);
        c.admin_email = get("PARLEY_ADMIN_EMAIL").or(c.admin_email);
        c.admin_password = get("PARLEY_ADMIN_PASSWORD").or(c.admin_password);
        c.smtp_url = get("PARLEY_SMTP_URL").or(c.smtp_url);
        c.email_from = get("PARLEY_EMAIL_FROM").unwrap_or(c.email_from);
        if let Some(d) = get("PARLEY_EMAIL_FALLBACK_DELAY") {
            c.email_fallback_delay =
                parse_duration(&d).ok_or_else(|| anyhow::anyhow!("PARLEY_EMAIL_FALLBACK_DELAY {d:?}: use e.g. 10m or 5s"))?;
        }
        c.meili_url = get("MEILI_URL").or(c.meili_url);
        c.meili_key = get("MEILI_KEY").or(c.meili_key);
        if let Some(j) = get("PARLEY_LOG_JSON") {
            c.log_json = matches!(j.as_str(), "1" | "true" | "yes");
        }
        Ok(c)
    }

    /// Where email goes: SMTP when configured, else the outbox folder.
    pub fn mailer(&self) -> anyhow::Result<parley_engine::mail::Mailer> {
        parley_engine::mail::Mailer::new(self.smtp_url.as_deref(), self.data_dir.join("outbox"), &self.email_from)
    }

    /// Meilisearch for people search, when a URL is configured.
    pub fn meili(&self) -> Option<parley_engine::search::meili::MeiliConfig> {
        let url = self.meili_url.clone().filter(|u| !u.trim().is_empty())?;
        Some(parley_engine::search::meili::MeiliConfig { url, key: self.meili_key.clone() })
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| parley_engine::Db::sqlite_url_in(&self.data_dir))
    }

    /// The public base URL, defaulting to the bound address.
    pub fn public_url(&self, bound: SocketAddr) -> String {
        self.public_url.clone().unwrap_or_else(|| format!("http://{bound}")).trim_end_matches('/').to_owned()
    }
}

/// What `parley config example` prints.
pub const EXAMPLE: &str = r#"# parley.toml: every key is optional. Environment variables win over this file.

[server]
# Listen address. Env: PARLEY_BIND
bind = "127.0.0.1:8080"
# SQLite file, mail outbox, uploads. Env: PARLEY_DATA_DIR
data_dir = "./parley-data"
# Base URL used in links and emails. Env: PARLEY_PUBLIC_URL (default: http:// + bind)
# public_url = "https://chat.example.com"
# Log JSON lines instead of text. Env: PARLEY_LOG_JSON
log_json = false

[database]
# sqlite://… or postgres://…; unset: SQLite in data_dir. Env: DATABASE_URL
# url = "postgres://parley@localhost/parley"

[admin]
# On a first start with no teammates, create workspace "Default" with this admin.
# Without a password one is generated and printed once.
# Env: PARLEY_ADMIN_EMAIL, PARLEY_ADMIN_PASSWORD
# email = "you@example.com"
# password = "change me"

[email]
# SMTP server; unset: .eml files in data_dir/outbox. Env: PARLEY_SMTP_URL
# smtp_url = "smtp://user:pass@smtp.example.com:587?tls=starttls"
# The sender of every email. Env: PARLEY_EMAIL_FROM
# from = "Parley <parley@localhost>"
# Delay before a missed chat message is emailed. Env: PARLEY_EMAIL_FALLBACK_DELAY
fallback_delay = "10m"

[search]
# Use Meilisearch for people search. Env: MEILI_URL, MEILI_KEY
# meili_url = "http://127.0.0.1:7700"
# meili_key = "…"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_duration("soon"), None);
    }

    #[test]
    fn env_wins_over_file_and_file_over_defaults() {
        let dir = std::env::temp_dir().join(format!("parley-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("parley.toml");
        std::fs::write(&file, "[server]\nbind = \"127.0.0.1:9000\"\ndata_dir = \"/tmp/x\"\n[email]\nfallback_delay = \"5s\"\n").unwrap();
        let c = Config::load(Some(&file), |k| (k == "PARLEY_BIND").then(|| "127.0.0.1:9100".to_owned())).unwrap();
        assert_eq!(c.bind.port(), 9100);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.email_fallback_delay, Duration::from_secs(5));
        assert_eq!(c.smtp_url, None);
    }

    #[test]
    fn the_example_is_valid_and_unknown_keys_are_refused() {
        let _: FileConfig = toml::from_str(EXAMPLE).unwrap();
        assert!(toml::from_str::<FileConfig>("[server]\nbnd = \"x\"").is_err());
    }

    #[test]
    fn secrets_are_hidden_in_debug() {
        let c = Config {
            admin_password: Some("hunter22".into()),
            database_url: Some("postgres://u:pw@h/db".into()),
            meili_key: Some("meili-master-key".into()),
            ..Config::default()
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter22") && !shown.contains("pw@h") && !shown.contains("meili-master"), "{shown}");
        let meili = Config { meili_url: Some("http://127.0.0.1:7700".into()), ..c }.meili().unwrap();
        assert!(!format!("{meili:?}").contains("meili-master"));
    }

    #[test]
    fn meilisearch_comes_from_the_file_or_the_environment() {
        let dir = std::env::temp_dir().join(format!("parley-config-meili-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("parley.toml");
        std::fs::write(&file, "[search]\nmeili_url = \"http://127.0.0.1:7701\"\nmeili_key = \"from-file\"\n").unwrap();
        let c = Config::load(Some(&file), |_| None).unwrap();
        let m = c.meili().unwrap();
        assert_eq!((m.url.as_str(), m.key.as_deref()), ("http://127.0.0.1:7701", Some("from-file")));
        let c = Config::load(Some(&file), |k| (k == "MEILI_URL" || k == "MEILI_KEY").then(|| format!("env-{k}"))).unwrap();
        let m = c.meili().unwrap();
        assert_eq!((m.url.as_str(), m.key.as_deref()), ("env-MEILI_URL", Some("env-MEILI_KEY")));
        assert!(Config::default().meili().is_none());
    }
}
