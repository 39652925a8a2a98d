//! The `resin` provider: its configuration, which makes the context every resource shares
//! ([`super::context`]), and its resources.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tf_provider::schema::{Attribute, AttributeConstraint, AttributeType, Block, NestedBlock, Schema};
use tf_provider::value::Value;
use tf_provider::{AttributePath, Diagnostics, DynamicDataSource, DynamicResource, Provider};

use super::boot_check::BootCheck;
use super::context::{ProviderContext, SharedContext};
use super::disk::Disk;
use super::efi_stub::EfiStub;
use super::file_backed::FileResource;
use super::image::Image;
use super::image_backed::ImageResource;
use super::kernel::Kernel;
use super::package::Package;
use super::publish::Publish;
use super::published_image::PublishedImage;
use super::schema::{attribute, description};
use crate::assemble::SegmentCache;
use crate::oci::auth::{DockerConfig, RegistrySettings};
use crate::oci::cache::BlobCache;
use crate::oci::platform::{Platform, DEFAULT_PLATFORM};
use crate::oci::registry::RegistryClient;
use crate::oci::Puller;

/// How many blobs are downloaded at once unless `parallel_pulls` says otherwise.
const DEFAULT_PARALLEL_PULLS: i64 = 4;
/// MiB of compressed initrd segments kept unless `segment_cache_mb` says otherwise: a few
/// versions of a few images.
const DEFAULT_SEGMENT_CACHE_MB: i64 = 2048;
/// The largest `segment_cache_mb`: 1 PiB.
const MAX_SEGMENT_CACHE_MB: i64 = 1 << 30;

/// The provider.
#[derive(Default)]
pub struct ResinProvider {
    context: SharedContext,
}

#[derive(Serialize, Deserialize)]
pub struct ProviderConfig {
    cache_dir: Value<String>,
    platform: Value<String>,
    docker_config: Value<String>,
    parallel_pulls: Value<i64>,
    /// Absent from configurations written before it existed.
    #[serde(default)]
    registry_timeout: Value<i64>,
    #[serde(default)]
    segment_cache_mb: Value<i64>,
    registry: Value<Vec<RegistryBlock>>,
    #[serde(default)]
    segment_cache: Value<Vec<super::segment_cache_block::SegmentCacheBlock>>,
}

#[derive(Serialize, Deserialize)]
pub struct RegistryBlock {
    address: Value<String>,
    username: Value<String>,
    password: Value<String>,
    plain_http: Value<bool>,
}

/// `$XDG_CACHE_HOME/resin`, else `~/.cache/resin`.
fn default_cache_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("resin"));
    }
    let home = std::env::var_os("HOME").context("neither XDG_CACHE_HOME nor HOME is set; set cache_dir")?;
    Ok(PathBuf::from(home).join(".cache/resin"))
}

fn known_string(value: &Value<String>, name: &str, diags: &mut Diagnostics) -> Option<Option<String>> {
    match value {
        Value::Value(s) => Some(Some(s.clone())),
        Value::Null => Some(None),
        Value::Unknown => {
            diags.error_short(
                format!("{name} must be known when the provider is configured"),
                AttributePath::new(name.to_string()),
            );
            None
        }
    }
}

#[async_trait]
impl Provider for ResinProvider {
    type Config<'a> = ProviderConfig;
    type MetaState<'a> = tf_provider::value::ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        let registry = Block {
            description: description("Settings for one registry: credentials (overriding Docker's config.json) and whether it speaks plain HTTP."),
            attributes: HashMap::from([
                attribute("address", AttributeType::String, AttributeConstraint::Required,
                    "Registry host as it appears in image references, with its port if any (`ghcr.io`, `127.0.0.1:5000`). Docker Hub is `docker.io`."),
                attribute("username", AttributeType::String, AttributeConstraint::Optional, "User name for basic or token authentication."),
                (
                    "password".to_string(),
                    Attribute {
                        sensitive: true,
                        ..attribute("password", AttributeType::String, AttributeConstraint::Optional, "Password or access token.").1
                    },
                ),
                attribute("plain_http", AttributeType::Bool, AttributeConstraint::Optional,
                    "Talk plain HTTP (no TLS) to this registry. Only registries listed with this flag are ever contacted without TLS; meant for loopback test registries."),
            ]),
            ..Default::default()
        };
        Some(Schema {
            version: super::schema::SCHEMA_VERSION,
            block: Block {
                version: super::schema::SCHEMA_VERSION,
                description: description("Assembles immutable LinuxKit-style machine images (kernel, initrd, cmdline) from OCI images."),
                attributes: HashMap::from([
                    attribute("cache_dir", AttributeType::String, AttributeConstraint::Optional,
                        "Directory of the content-addressed blob cache, shared safely by concurrent Terraform runs. Default: `$XDG_CACHE_HOME/resin` or `~/.cache/resin`."),
                    attribute("platform", AttributeType::String, AttributeConstraint::Optional,
                        "Default platform of images, `os/arch[/variant]`. Default: `linux/amd64` (never the host's, so plans do not depend on the machine)."),
                    attribute("docker_config", AttributeType::String, AttributeConstraint::Optional,
                        "Path of Docker's `config.json` for registry credentials (auths, credHelpers, credsStore). Default: `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`."),
                    attribute("parallel_pulls", AttributeType::Number, AttributeConstraint::Optional,
                        "Largest number of blobs downloaded at once, by all the resources of a run together (layers and configs; manifests are small and not counted). Default: 4."),
                    attribute("segment_cache_mb", AttributeType::Number, AttributeConstraint::Optional,
                        "MiB of compressed initrd segments kept in `cache_dir/segments` between applies, so that an image where nothing or one package changed compresses only what is new. After each assembly the least recently used segments are removed until at most this much is kept; 0 keeps none. Default: 2048."),
                    attribute("registry_timeout", AttributeType::Number, AttributeConstraint::Optional,
                        "Seconds a registry request may wait for a connection, or between two reads of its answer, before it is abandoned and retried. A request is retried up to 4 times (after 0.5, 1, 2 and 4 s, or the registry's `Retry-After` up to 30 s) on HTTP 5xx and 429, refused or reset connections, timeouts and answers cut off part way; never on TLS failures or other 4xx answers (a 401 authenticates once more first). Default: 60."),
                ]),
                blocks: HashMap::from([
                    ("registry".to_string(), NestedBlock::List(registry)),
                    ("segment_cache".to_string(), NestedBlock::Optional(super::segment_cache_block::schema())),
                ]),
                deprecated: false,
            },
        })
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: Self::Config<'a>) -> Option<()> {
        if let Value::Value(platform) = &config.platform {
            if let Err(e) = platform.parse::<Platform>() {
                diags.error("Invalid platform", e.to_string(), AttributePath::new("platform"));
            }
        }
        if let Value::Value(n) = config.parallel_pulls {
            if !(1..=64).contains(&n) {
                diags.error(
                    "Invalid parallel_pulls",
                    format!("{n} is outside 1..64"),
                    AttributePath::new("parallel_pulls"),
                );
            }
        }
        if let Value::Value(n) = config.segment_cache_mb {
            if !(0..=MAX_SEGMENT_CACHE_MB).contains(&n) {
                diags.error(
                    "Invalid segment_cache_mb",
                    format!("{n} is outside 0..{MAX_SEGMENT_CACHE_MB} (MiB)"),
                    AttributePath::new("segment_cache_mb"),
                );
            }
        }
        if let Value::Value(n) = config.registry_timeout {
            if !(1..=3600).contains(&n) {
                diags.error(
                    "Invalid registry_timeout",
                    format!("{n} seconds is outside 1..3600"),
                    AttributePath::new("registry_timeout"),
                );
            }
        }
        super::segment_cache_block::validate(&config.segment_cache, diags);
        for (index, block) in config.registry.iter().flatten().enumerate() {
            if let Value::Value(address) = &block.address {
                let probe = format!("{address}/probe");
                if address.contains('/') || probe.parse::<crate::oci::reference::ImageReference>().is_err() {
                    diags.error(
                        "Invalid registry address",
                        format!("{address:?} is not a registry host[:port]"),
                        AttributePath::new("registry").index(super::attribute_index(index)).attribute("address"),
                    );
                }
            }
        }
        Some(())
    }

    async fn configure<'a>(
        &self,
        diags: &mut Diagnostics,
        _terraform_version: String,
        config: Self::Config<'a>,
    ) -> Option<()> {
        let cache_dir = match known_string(&config.cache_dir, "cache_dir", diags)? {
            Some(dir) => PathBuf::from(dir),
            None => match default_cache_dir() {
                Ok(dir) => dir,
                Err(e) => {
                    super::error_at(diags, "No cache directory", &e, AttributePath::new("cache_dir"));
                    return None;
                }
            },
        };
        let platform =
            known_string(&config.platform, "platform", diags)?.unwrap_or_else(|| DEFAULT_PLATFORM.to_string());
        let platform: Platform = match platform.parse() {
            Ok(p) => p,
            Err(e) => {
                super::error_at(diags, "Invalid platform", &e, AttributePath::new("platform"));
                return None;
            }
        };
        let docker_config_path = known_string(&config.docker_config, "docker_config", diags)?
            .map(PathBuf::from)
            .or_else(DockerConfig::default_path);
        let docker_config = match docker_config_path.as_deref().map(DockerConfig::load).transpose() {
            Ok(c) => c.unwrap_or_default(),
            Err(e) => {
                super::error_at(diags, "Unreadable Docker config", &e, AttributePath::new("docker_config"));
                return None;
            }
        };
        let mut registries = Vec::new();
        for (index, block) in config.registry.iter().flatten().enumerate() {
            let path = || AttributePath::new("registry").index(super::attribute_index(index));
            let (Value::Value(address), false, false, false) = (
                &block.address,
                block.username.is_unknown(),
                block.password.is_unknown(),
                block.plain_http.is_unknown(),
            ) else {
                diags.error_short("registry settings must be known when the provider is configured", path());
                return None;
            };
            registries.push(RegistrySettings {
                address: address.clone(),
                username: block.username.as_ref_option().cloned(),
                password: block.password.as_ref_option().cloned(),
                plain_http: block.plain_http.unwrap_or(false),
            });
        }
        // Opening removes the temporary files of killed runs: off the async runtime.
        let opening = cache_dir.clone();
        let segment_bytes =
            config.segment_cache_mb.unwrap_or(DEFAULT_SEGMENT_CACHE_MB).clamp(0, MAX_SEGMENT_CACHE_MB).unsigned_abs()
                << 20;
        let opened = tokio::task::spawn_blocking(move || {
            Ok::<_, anyhow::Error>((BlobCache::open(&opening)?, SegmentCache::open(&opening, segment_bytes)?))
        })
        .await;
        let (cache, segments) = match opened.map_err(anyhow::Error::from).and_then(|r| r) {
            Ok(caches) => caches,
            Err(e) => {
                super::error_at(diags, "Unusable cache directory", &e, AttributePath::new("cache_dir"));
                return None;
            }
        };
        let parallel = usize::try_from(config.parallel_pulls.unwrap_or(DEFAULT_PARALLEL_PULLS).clamp(1, 64))
            .expect("clamped to 1..=64");
        let timeout = match config.registry_timeout {
            Value::Value(seconds) => std::time::Duration::from_secs(seconds.clamp(1, 3600).unsigned_abs()),
            _ => crate::oci::registry::DEFAULT_TIMEOUT,
        };
        let client = Arc::new(RegistryClient::new(registries, docker_config, timeout));
        let segments =
            match super::segment_cache_block::configure(&config.segment_cache, client.clone(), cache.clone(), diags) {
                Ok(Some(remote)) => segments.with_remote(Arc::new(remote)),
                Ok(None) => segments,
                Err(()) => return None,
            };
        let context = ProviderContext {
            puller: Puller::new(cache, client, parallel),
            segments,
            platform,
            platform_missing_reported: std::sync::atomic::AtomicBool::new(false),
        };
        crate::log::debug("provider configured", &[("cache_dir", cache_dir.display().to_string())]);
        // A second ConfigureProvider on the same process keeps the first configuration,
        // which is what Terraform does with one provider process per configuration.
        let _ = self.context.set(Arc::new(context));
        Some(())
    }

    fn get_resources(&self, _diags: &mut Diagnostics) -> Option<HashMap<String, Box<dyn DynamicResource>>> {
        Some(HashMap::from([
            ("kernel".to_string(), ImageResource::<Kernel>::new(self.context.clone()).into()),
            ("package".to_string(), ImageResource::<Package>::new(self.context.clone()).into()),
            ("efi_stub".to_string(), ImageResource::<EfiStub>::new(self.context.clone()).into()),
            ("image".to_string(), FileResource::<Image>::new(self.context.clone()).into()),
            ("disk".to_string(), FileResource::<Disk>::new(self.context.clone()).into()),
            ("publish".to_string(), Publish::new(self.context.clone()).into()),
            ("boot_check".to_string(), BootCheck::new(self.context.clone()).into()),
        ]))
    }

    fn get_data_sources(&self, _diags: &mut Diagnostics) -> Option<HashMap<String, Box<dyn DynamicDataSource>>> {
        Some(HashMap::from([("published_image".to_string(), PublishedImage::new(self.context.clone()).into())]))
    }
}
