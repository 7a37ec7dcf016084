//! Configuration: defaults -> TOML file (`--config` / `PNS_CONFIG`) -> environment -> flags.
//! The file names environment variables for secrets; it never holds a secret itself.

use std::path::Path;

use serde::Deserialize;

use std::{collections::HashMap, sync::Arc, time::Duration};

use crate::domain::{Pool, Provider, binder::Carriers, provider::Carrier, validate_pool_key};
use crate::providers::{
    aliyun::{AliyunCarrier, AliyunConfig},
    nxcloud::{NxcloudCarrier, NxcloudConfig},
};

/// Default carrier base URLs (tests and staging override `base_url`).
pub const NXCLOUD_BASE_URL: &str = "https://api.nxcloud.com";
pub const ALIYUN_BASE_URL: &str = "https://dyplsapi.aliyuncs.com";
/// Default upstream deadline.
pub const DEFAULT_UPSTREAM_TIMEOUT_MS: u64 = 5000;

/// The TOML config file (see README, "Configuration").
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Pools declared here are created (or updated) at start-up and appear in `ListPools`.
    #[serde(default)]
    pub pools: Vec<PoolConfig>,
    /// Webhook authentication for carrier pushes.
    #[serde(default)]
    pub webhooks: Option<WebhookConfig>,
    /// How often the sweeper ends expired bindings, in milliseconds (default 1000).
    #[serde(default)]
    pub sweep_interval_ms: Option<u64>,
    /// Days the real numbers of an ended binding (and of its events) are kept (default 30).
    #[serde(default)]
    pub retention_days: Option<u64>,
    /// API keys of the admin and the softswitch (names of environment variables).
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// Tenants and the environment variables holding their API keys.
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
    /// TLS of both listeners (`--tls-cert`, `--tls-key`, `--tls-client-ca` and `PNS_TLS_*`
    /// take precedence).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

/// `[tls]`: paths of PEM files (relative paths are relative to the working directory).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The server's certificate chain, leaf first.
    #[serde(default)]
    pub cert: Option<std::path::PathBuf>,
    /// The certificate's private key.
    #[serde(default)]
    pub key: Option<std::path::PathBuf>,
    /// CAs whose client certificates are accepted; set = mutual TLS (every client must
    /// present one).
    #[serde(default)]
    pub client_ca: Option<std::path::PathBuf>,
}

/// `[auth]`: each field names an environment variable, never a key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The admin key: pools and numbers, softswitch calls, any tenant via `x-pns-tenant`.
    #[serde(default)]
    pub admin_key_env: Option<String>,
    /// The softswitch's key: `NotifyCallIn` and `ReportCallEvent` only.
    #[serde(default)]
    pub softswitch_key_env: Option<String>,
}

/// One `[[tenants]]` entry: `api_key_env` and/or `api_key_envs` (several keys valid at once,
/// for rotation).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    pub name: String,
    #[serde(default)]
    pub api_key_env: Option<String>,
    #[serde(default)]
    pub api_key_envs: Vec<String>,
    /// Requests a second this tenant may make on average (a token bucket; absent = no limit).
    #[serde(default)]
    pub rate_per_second: Option<f64>,
    /// Requests it may make at once (default: one second's worth, at least 1).
    #[serde(default)]
    pub burst: Option<u32>,
    /// Concurrent `WatchEvents` streams of this tenant (default
    /// [`crate::events::DEFAULT_TENANT_STREAMS`]); more get RESOURCE_EXHAUSTED.
    #[serde(default)]
    pub max_streams: Option<u32>,
}

/// Where `serve` listens and whether open mode may face the network.
#[derive(Debug, Clone, Default)]
pub struct Exposure {
    /// Every listen address (`host:port`).
    pub listeners: Vec<String>,
    /// `--allow-unauthenticated`.
    pub allow_unauthenticated: bool,
}

/// Largest `max_streams` of a tenant.
pub const MAX_TENANT_STREAMS: u32 = 1_000_000;

/// Shortest API key accepted.
pub const MIN_API_KEY_CHARS: usize = 16;

/// Whether `addr` (`host:port`) is a loopback address; a host name counts only if it is
/// `localhost`.
pub fn is_loopback(addr: &str) -> bool {
    if let Ok(sa) = addr.parse::<std::net::SocketAddr>() {
        return sa.ip().is_loopback();
    }
    addr.rsplit_once(':')
        .is_some_and(|(host, _)| host.eq_ignore_ascii_case("localhost"))
}

/// One `[[pools]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// The `pool_key` clients send.
    pub key: String,
    /// `local`, `nxcloud` or `aliyun`.
    pub provider: String,
    /// NXCloud `businessId` (应用key).
    #[serde(default)]
    pub business_id: Option<String>,
    /// Aliyun `PoolKey`.
    #[serde(default)]
    pub carrier_pool_key: Option<String>,
    /// Carrier API base URL (tests and staging point it elsewhere).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Names of environment variables holding NXCloud credentials.
    #[serde(default)]
    pub access_key_env: Option<String>,
    #[serde(default)]
    pub access_secret_env: Option<String>,
    /// Names of environment variables holding Aliyun credentials.
    #[serde(default)]
    pub access_key_id_env: Option<String>,
    #[serde(default)]
    pub access_key_secret_env: Option<String>,
    /// Upstream request deadline in milliseconds.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub nxcloud_token_env: Option<String>,
    pub aliyun_token_env: Option<String>,
    /// Source networks pushes are accepted from (`10.0.0.0/8`, `2001:db8::/32`, or a bare
    /// address); absent or empty = from anywhere. Others get 403.
    #[serde(default)]
    pub allow_networks: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path} is invalid: {source}")]
    Parse {
        path: String,
        source: Box<toml::de::Error>,
    },
    #[error("config: {0}")]
    Invalid(String),
}

/// Everything `serve` needs from the config file, checked as a whole before the database is
/// touched.
pub struct Resolved {
    pub pools: Vec<Pool>,
    pub carriers: Carriers,
    pub webhook_tokens: crate::http::WebhookTokens,
    /// `[webhooks] allow_networks`, parsed.
    pub webhook_networks: crate::http::AllowList,
    /// The API keys (digests); empty = open mode.
    pub auth: crate::grpc::auth::Auth,
    /// Set in open mode: the warning `serve` logs.
    pub open_mode: Option<String>,
}

/// Collects every problem of a config so the operator fixes them in one go.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn add(&mut self, msg: String) {
        self.0.push(msg);
    }

    fn finish(self) -> Result<(), ConfigError> {
        match self.0.len() {
            0 => Ok(()),
            1 => Err(ConfigError::Invalid(self.0.join(""))),
            n => Err(ConfigError::Invalid(format!(
                "{n} problems:\n  - {}",
                self.0.join("\n  - ")
            ))),
        }
    }
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let cfg: FileConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            source: Box::new(e),
        })?;
        Ok(cfg)
    }

    /// Validates the whole file against the environment — pools, carrier credentials, webhook
    /// tokens — and reports every problem at once (names of variables, never their values).
    /// API keys too: with none configured, open mode is allowed only when every listener of
    /// `exposure` is on loopback, or with `--allow-unauthenticated`.
    pub fn resolve(
        &self,
        env: impl Fn(&str) -> Option<String>,
        exposure: &Exposure,
    ) -> Result<Resolved, ConfigError> {
        let mut problems = Problems::default();
        let pools = self.pools_checked(&mut problems);
        let carriers = self.carriers_checked(&pools, &env, &mut problems);
        let webhook_tokens = self.tokens_checked(&env, &mut problems);
        let keys = self.keys_checked(&env, &mut problems);
        let limits = self.limits_checked(&mut problems);
        let stream_caps = self.stream_caps_checked(&mut problems);
        let webhook_networks = match self.webhooks.as_ref().map(|w| w.allow_networks.as_slice()) {
            None => Default::default(),
            Some(nets) => crate::http::AllowList::parse(nets).unwrap_or_else(|bad| {
                bad.into_iter().for_each(|b| problems.add(b));
                Default::default()
            }),
        };
        let mut open_mode = None;
        if keys.is_empty() && problems.0.is_empty() {
            let exposed: Vec<&str> = exposure
                .listeners
                .iter()
                .map(String::as_str)
                .filter(|a| !is_loopback(a))
                .collect();
            if exposed.is_empty() {
                open_mode = Some(
                    "no API keys configured ([auth] / [[tenants]]): serving OPEN as tenant `default` \
                     on loopback only; every local caller is admin"
                        .to_owned(),
                );
            } else if exposure.allow_unauthenticated {
                open_mode = Some(format!(
                    "--allow-unauthenticated: serving WITHOUT AUTHENTICATION on {}; anyone who \
                     reaches these ports can read and change every binding and pool",
                    exposed.join(", ")
                ));
            } else {
                problems.add(format!(
                    "no API keys configured ([auth] admin_key_env / [[tenants]] api_key_env) and \
                     listening on non-loopback {}: refusing to serve unauthenticated; configure \
                     keys, listen on 127.0.0.1, or pass --allow-unauthenticated",
                    exposed.join(", ")
                ));
            }
        }
        problems.finish()?;
        Ok(Resolved {
            pools: pools.into_iter().flatten().collect(),
            carriers,
            webhook_tokens,
            webhook_networks,
            auth: crate::grpc::auth::Auth::with_keys(keys)
                .with_limits(limits)
                .with_stream_caps(stream_caps),
            open_mode,
        })
    }

    /// The `max_streams` of `[[tenants]]` that set one.
    fn stream_caps_checked(&self, problems: &mut Problems) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        for t in &self.tenants {
            match t.max_streams {
                None => {}
                Some(n) if (1..=MAX_TENANT_STREAMS).contains(&n) => {
                    out.push((t.name.trim().to_owned(), n as usize))
                }
                Some(_) => problems.add(format!(
                    "tenant {:?}: max_streams must be 1 to {MAX_TENANT_STREAMS}",
                    crate::domain::text::echo(&t.name)
                )),
            }
        }
        out
    }

    /// The request-rate limits of `[[tenants]]` (`rate_per_second`, `burst`).
    fn limits_checked(
        &self,
        problems: &mut Problems,
    ) -> Vec<(String, crate::grpc::auth::RateLimit)> {
        let mut out = Vec::new();
        for t in &self.tenants {
            match (t.rate_per_second, t.burst) {
                (None, None) => {}
                (None, Some(_)) => problems.add(format!(
                    "tenant {:?}: burst needs rate_per_second",
                    crate::domain::text::echo(&t.name)
                )),
                (Some(r), burst) => {
                    if !(r > 0.0 && r <= 1_000_000.0) {
                        problems.add(format!(
                            "tenant {:?}: rate_per_second must be above 0 and at most 1000000",
                            crate::domain::text::echo(&t.name)
                        ));
                        continue;
                    }
                    let burst = match burst {
                        Some(0) => {
                            problems.add(format!(
                                "tenant {:?}: burst must be at least 1",
                                crate::domain::text::echo(&t.name)
                            ));
                            continue;
                        }
                        Some(b) => f64::from(b),
                        None => r.ceil().max(1.0),
                    };
                    out.push((
                        t.name.trim().to_owned(),
                        crate::grpc::auth::RateLimit {
                            per_second: r,
                            burst,
                        },
                    ));
                }
            }
        }
        out
    }

    /// The API keys `[auth]` and `[[tenants]]` name, with their roles (empty = none
    /// configured). Names of variables appear in problems, never their values.
    fn keys_checked(
        &self,
        env: &impl Fn(&str) -> Option<String>,
        problems: &mut Problems,
    ) -> Vec<(String, crate::grpc::auth::Role)> {
        use crate::grpc::auth::Role;
        let mut out: Vec<(String, Role)> = Vec::new();
        let mut read = |var: &str, what: &str, role: Role, problems: &mut Problems| {
            match env(var).filter(|v| !v.trim().is_empty()) {
                None => problems.add(format!(
                    "environment variable {var} ({what}) is not set"
                )),
                Some(v) if v.trim().chars().count() < MIN_API_KEY_CHARS
                    || v.trim().chars().any(|c| !c.is_ascii_graphic()) =>
                {
                    problems.add(format!(
                        "the key in {var} ({what}) must be at least {MIN_API_KEY_CHARS} visible ASCII characters"
                    ))
                }
                Some(v) => {
                    let v = v.trim().to_owned();
                    if out.iter().any(|(k, _)| *k == v) {
                        problems.add(format!(
                            "the key in {var} ({what}) is also configured elsewhere; every key must be distinct"
                        ));
                    } else {
                        out.push((v, role));
                    }
                }
            }
        };
        if let Some(a) = &self.auth {
            if a.admin_key_env.is_none() && a.softswitch_key_env.is_none() {
                problems
                    .add("[auth] needs admin_key_env (and optionally softswitch_key_env)".into());
            }
            if let Some(v) = &a.admin_key_env {
                read(v, "admin key", Role::Admin, problems);
            }
            if let Some(v) = &a.softswitch_key_env {
                read(v, "softswitch key", Role::Softswitch, problems);
            }
        }
        let mut names = std::collections::HashSet::new();
        for t in &self.tenants {
            let name = match crate::grpc::validate::parse_tenant(Some(t.name.as_bytes())) {
                Ok(n) if !t.name.trim().is_empty() => n,
                _ => {
                    problems.add(format!(
                        "tenant name {:?} must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '-'",
                        crate::domain::text::echo(&t.name)
                    ));
                    continue;
                }
            };
            if !names.insert(name.clone()) {
                problems.add(format!("tenant {name:?} is declared twice"));
                continue;
            }
            let vars: Vec<&String> = t.api_key_env.iter().chain(&t.api_key_envs).collect();
            if vars.is_empty() {
                problems.add(format!("tenant {name:?} needs api_key_env or api_key_envs"));
            }
            for v in vars {
                read(
                    v,
                    &format!("API key of tenant {name}"),
                    Role::Tenant(name.clone()),
                    problems,
                );
            }
        }
        out
    }

    /// Builds the carrier adapters of the declared NXCloud/Aliyun pools. Credentials are read
    /// from the environment variables the file names; every missing variable is named in the
    /// error, its value never appears anywhere.
    pub fn build_carriers(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Carriers, ConfigError> {
        let mut problems = Problems::default();
        let pools = self.pools_checked(&mut problems);
        let carriers = self.carriers_checked(&pools, &env, &mut problems);
        problems.finish()?;
        Ok(carriers)
    }

    /// The webhook tokens, read from the environment variables `[webhooks]` names.
    pub fn webhook_tokens(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<crate::http::WebhookTokens, ConfigError> {
        let mut problems = Problems::default();
        let tokens = self.tokens_checked(&env, &mut problems);
        problems.finish()?;
        Ok(tokens)
    }

    /// The pools the file declares, validated.
    pub fn declared_pools(&self) -> Result<Vec<Pool>, ConfigError> {
        let mut problems = Problems::default();
        let pools = self.pools_checked(&mut problems);
        problems.finish()?;
        Ok(pools.into_iter().flatten().collect())
    }

    fn carriers_checked(
        &self,
        pools: &[Option<Pool>],
        env: &impl Fn(&str) -> Option<String>,
        problems: &mut Problems,
    ) -> Carriers {
        let mut out: HashMap<String, Arc<dyn Carrier>> = HashMap::new();
        let mut secret = |pool: &str, field: &str, var: &Option<String>| -> Option<String> {
            let Some(name) = var.as_deref() else {
                problems.add(format!("pool {pool:?}: {field} is required"));
                return None;
            };
            let value = env(name).filter(|v| !v.is_empty());
            if value.is_none() {
                problems.add(format!(
                    "pool {pool:?}: environment variable {name} ({field}) is not set"
                ));
            }
            value
        };
        for (p, pool) in self.pools.iter().zip(pools) {
            let Some(pool) = pool else { continue };
            let timeout =
                Duration::from_millis(p.timeout_ms.unwrap_or(DEFAULT_UPSTREAM_TIMEOUT_MS));
            let carrier: Arc<dyn Carrier> = match pool.provider {
                Provider::Local => continue,
                Provider::Nxcloud => {
                    let ak = secret(&p.key, "access_key_env", &p.access_key_env);
                    let sk = secret(&p.key, "access_secret_env", &p.access_secret_env);
                    let (Some(access_key), Some(access_secret)) = (ak, sk) else {
                        continue;
                    };
                    Arc::new(NxcloudCarrier::new(NxcloudConfig {
                        base_url: p
                            .base_url
                            .clone()
                            .unwrap_or_else(|| NXCLOUD_BASE_URL.into()),
                        business_id: pool.carrier_pool_key.clone(),
                        access_key,
                        access_secret,
                        timeout,
                    }))
                }
                Provider::Aliyun => {
                    let ak = secret(&p.key, "access_key_id_env", &p.access_key_id_env);
                    let sk = secret(&p.key, "access_key_secret_env", &p.access_key_secret_env);
                    let (Some(access_key_id), Some(access_key_secret)) = (ak, sk) else {
                        continue;
                    };
                    Arc::new(AliyunCarrier::new(AliyunConfig {
                        base_url: p.base_url.clone().unwrap_or_else(|| ALIYUN_BASE_URL.into()),
                        pool_key: pool.carrier_pool_key.clone(),
                        access_key_id,
                        access_key_secret,
                        timeout,
                    }))
                }
            };
            out.insert(pool.pool_key.clone(), carrier);
        }
        Arc::new(out)
    }

    fn tokens_checked(
        &self,
        env: &impl Fn(&str) -> Option<String>,
        problems: &mut Problems,
    ) -> crate::http::WebhookTokens {
        let Some(w) = &self.webhooks else {
            return Default::default();
        };
        let mut read = |var: &Option<String>| -> Option<String> {
            let name = var.as_deref()?;
            match env(name).filter(|v| !v.is_empty()) {
                Some(v) if v.chars().count() >= 16 => Some(v),
                Some(_) => {
                    problems.add(format!(
                        "webhook token in {name} must be at least 16 characters"
                    ));
                    None
                }
                None => {
                    problems.add(format!(
                        "environment variable {name} (webhook token) is not set"
                    ));
                    None
                }
            }
        };
        crate::http::WebhookTokens {
            nxcloud: read(&w.nxcloud_token_env),
            aliyun: read(&w.aliyun_token_env),
        }
    }

    /// Each declared pool, validated (`None` where it is invalid; the problem is recorded).
    fn pools_checked(&self, problems: &mut Problems) -> Vec<Option<Pool>> {
        let mut seen = std::collections::HashSet::new();
        self.pools
            .iter()
            .map(|p| {
                let mut ok = true;
                if let Err(e) = validate_pool_key(&p.key) {
                    problems.add(format!(
                        "pool key {:?} {e}",
                        crate::domain::text::echo(&p.key)
                    ));
                    ok = false;
                } else if !seen.insert(p.key.clone()) {
                    problems.add(format!("pool {:?} is declared twice", p.key));
                    ok = false;
                }
                let provider = Provider::parse(&p.provider);
                if provider.is_none() {
                    problems.add(format!(
                        "pool {:?}: provider must be local, nxcloud or aliyun",
                        p.key
                    ));
                }
                let carrier_pool_key = match provider {
                    None | Some(Provider::Local) => Some(String::new()),
                    Some(Provider::Nxcloud) => p.business_id.clone(),
                    Some(Provider::Aliyun) => p.carrier_pool_key.clone(),
                };
                match (provider, &carrier_pool_key) {
                    (Some(Provider::Nxcloud), None) => {
                        problems.add(format!("pool {:?}: nxcloud pools need business_id", p.key))
                    }
                    (Some(Provider::Aliyun), None) => problems.add(format!(
                        "pool {:?}: aliyun pools need carrier_pool_key",
                        p.key
                    )),
                    _ => {}
                }
                Some(Pool {
                    pool_key: p.key.clone(),
                    provider: provider?,
                    carrier_pool_key: carrier_pool_key?,
                    tenants: Vec::new(),
                })
                .filter(|_| ok)
            })
            .collect()
    }
}
