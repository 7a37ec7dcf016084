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
        cfg.declared_pools()?;
        Ok(cfg)
    }

    /// Builds the carrier adapters of the declared NXCloud/Aliyun pools. Credentials are read
    /// from the environment variables the file names; a missing variable is named in the error,
    /// its value never appears anywhere.
    pub fn build_carriers(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Carriers, ConfigError> {
        let mut out: HashMap<String, Arc<dyn Carrier>> = HashMap::new();
        let secret =
            |pool: &str, field: &str, var: &Option<String>| -> Result<String, ConfigError> {
                let name = var.as_deref().ok_or_else(|| {
                    ConfigError::Invalid(format!("pool {pool:?}: {field} is required"))
                })?;
                env(name).filter(|v| !v.is_empty()).ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "pool {pool:?}: environment variable {name} ({field}) is not set"
                    ))
                })
            };
        for (p, pool) in self.pools.iter().zip(self.declared_pools()?) {
            let timeout =
                Duration::from_millis(p.timeout_ms.unwrap_or(DEFAULT_UPSTREAM_TIMEOUT_MS));
            let carrier: Arc<dyn Carrier> = match pool.provider {
                Provider::Local => continue,
                Provider::Nxcloud => Arc::new(NxcloudCarrier::new(NxcloudConfig {
                    base_url: p
                        .base_url
                        .clone()
                        .unwrap_or_else(|| NXCLOUD_BASE_URL.into()),
                    business_id: pool.carrier_pool_key.clone(),
                    access_key: secret(&p.key, "access_key_env", &p.access_key_env)?,
                    access_secret: secret(&p.key, "access_secret_env", &p.access_secret_env)?,
                    timeout,
                })),
                Provider::Aliyun => Arc::new(AliyunCarrier::new(AliyunConfig {
                    base_url: p.base_url.clone().unwrap_or_else(|| ALIYUN_BASE_URL.into()),
                    pool_key: pool.carrier_pool_key.clone(),
                    access_key_id: secret(&p.key, "access_key_id_env", &p.access_key_id_env)?,
                    access_key_secret: secret(
                        &p.key,
                        "access_key_secret_env",
                        &p.access_key_secret_env,
                    )?,
                    timeout,
                })),
            };
            out.insert(pool.pool_key.clone(), carrier);
        }
        Ok(Arc::new(out))
    }

    /// The webhook tokens, read from the environment variables `[webhooks]` names.
    pub fn webhook_tokens(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<crate::http::WebhookTokens, ConfigError> {
        let Some(w) = &self.webhooks else {
            return Ok(Default::default());
        };
        let read = |var: &Option<String>| -> Result<Option<String>, ConfigError> {
            match var {
                None => Ok(None),
                Some(name) => match env(name).filter(|v| !v.is_empty()) {
                    Some(v) if v.len() >= 16 => Ok(Some(v)),
                    Some(_) => Err(ConfigError::Invalid(format!(
                        "webhook token in {name} must be at least 16 characters"
                    ))),
                    None => Err(ConfigError::Invalid(format!(
                        "environment variable {name} (webhook token) is not set"
                    ))),
                },
            }
        };
        Ok(crate::http::WebhookTokens {
            nxcloud: read(&w.nxcloud_token_env)?,
            aliyun: read(&w.aliyun_token_env)?,
        })
    }

    /// The pools the file declares, validated.
    pub fn declared_pools(&self) -> Result<Vec<Pool>, ConfigError> {
        self.pools
            .iter()
            .map(|p| {
                validate_pool_key(&p.key)
                    .map_err(|e| ConfigError::Invalid(format!("pool key {:?} {e}", p.key)))?;
                let provider = Provider::parse(&p.provider).ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "pool {:?}: provider must be local, nxcloud or aliyun",
                        p.key
                    ))
                })?;
                let carrier_pool_key = match provider {
                    Provider::Local => String::new(),
                    Provider::Nxcloud => p.business_id.clone().ok_or_else(|| {
                        ConfigError::Invalid(format!(
                            "pool {:?}: nxcloud pools need business_id",
                            p.key
                        ))
                    })?,
                    Provider::Aliyun => p.carrier_pool_key.clone().ok_or_else(|| {
                        ConfigError::Invalid(format!(
                            "pool {:?}: aliyun pools need carrier_pool_key",
                            p.key
                        ))
                    })?,
                };
                Ok(Pool {
                    pool_key: p.key.clone(),
                    provider,
                    carrier_pool_key,
                })
            })
            .collect()
    }
}
