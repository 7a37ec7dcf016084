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
    pub fn resolve(&self, env: impl Fn(&str) -> Option<String>) -> Result<Resolved, ConfigError> {
        let mut problems = Problems::default();
        let pools = self.pools_checked(&mut problems);
        let carriers = self.carriers_checked(&pools, &env, &mut problems);
        let webhook_tokens = self.tokens_checked(&env, &mut problems);
        problems.finish()?;
        Ok(Resolved {
            pools: pools.into_iter().flatten().collect(),
            carriers,
            webhook_tokens,
        })
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
                })
                .filter(|_| ok)
            })
            .collect()
    }
}
