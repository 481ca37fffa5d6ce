//! Where model files come from: the Hugging Face hub, a local directory or a local file.
//!
//! `--model` accepts, in this order of precedence:
//! 1. an existing local file or directory;
//! 2. an id from the model catalog (`whisper-tiny.en`), which names a hub repo and revision;
//! 3. a hub repo id `owner/name`, optionally `owner/name@revision`.
//!
//! Hub files go to the standard Hugging Face cache, so models downloaded by Python tools are
//! reused: `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`.
//! `HF_HUB_OFFLINE=1` reads only the cache. `HF_TOKEN` is sent for gated repos.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::{ApiBuilder, ApiRepo};
use hf_hub::{Cache, Repo, RepoType};

use crate::catalog::Catalog;
use crate::progress::{Progress, Unit};
use crate::{Error, Result};

/// Where a model lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A repository on the Hugging Face hub.
    Hub {
        /// `owner/name`.
        repo: String,
        /// Branch, tag or commit (`main` by default).
        revision: String,
    },
    /// A local directory holding the model's files.
    Dir(PathBuf),
    /// A single local file (a GGUF, a `.safetensors`, an `.onnx`); companions are looked up
    /// beside it.
    File(PathBuf),
}

impl ModelSource {
    /// Interprets a `--model` argument (see the module docs for the precedence).
    pub fn parse(spec: &str, catalog: &Catalog) -> Result<Self> {
        let path = expand_home(spec);
        if path.is_dir() {
            return Ok(Self::Dir(path));
        }
        if path.is_file() {
            return Ok(Self::File(path));
        }
        if let Some(entry) = catalog.get(spec) {
            return Ok(Self::Hub {
                repo: entry.repo.clone(),
                revision: entry.revision.clone(),
            });
        }
        if looks_like_path(spec) {
            return Err(Error::UnknownModel(format!(
                "{spec}: no such file or directory"
            )));
        }
        let (repo, revision) = match spec.split_once('@') {
            Some((repo, rev)) if !rev.is_empty() => (repo, rev),
            Some(_) => {
                return Err(Error::UnknownModel(format!(
                    "{spec}: empty revision after '@'"
                )));
            }
            None => (spec, "main"),
        };
        if !is_repo_id(repo) {
            return Err(Error::UnknownModel(format!(
                "unknown model '{spec}': not a local path, not a catalog id (see `mlbench models list`), and not a hub repo id of the form owner/name[@revision]"
            )));
        }
        Ok(Self::Hub {
            repo: repo.to_string(),
            revision: revision.to_string(),
        })
    }

    /// A short description for logs and reports.
    pub fn describe(&self) -> String {
        match self {
            Self::Hub { repo, revision } if revision == "main" => repo.clone(),
            Self::Hub { repo, revision } => format!("{repo}@{revision}"),
            Self::Dir(p) | Self::File(p) => p.display().to_string(),
        }
    }
}

fn expand_home(spec: &str) -> PathBuf {
    match (spec.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(spec),
    }
}

fn looks_like_path(spec: &str) -> bool {
    spec.starts_with('/')
        || spec.starts_with('.')
        || spec.starts_with('~')
        || spec.contains('\\')
        || spec.matches('/').count() > 1
        || [".gguf", ".safetensors", ".bin", ".onnx", ".pth"]
            .iter()
            .any(|ext| spec.ends_with(ext))
}

fn is_repo_id(repo: &str) -> bool {
    let valid = |part: &str| {
        !part.is_empty()
            && part.len() <= 96
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && !part.starts_with(['-', '.'])
    };
    matches!(repo.split_once('/'), Some((owner, name)) if valid(owner) && valid(name))
}

/// Hub settings, read from the standard environment variables.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// The hub cache directory (`.../huggingface/hub`).
    pub cache_dir: PathBuf,
    /// Read only the cache (`HF_HUB_OFFLINE`).
    pub offline: bool,
    /// Access token (`HF_TOKEN`, else the token file in `HF_HOME`).
    pub token: Option<String>,
    /// Hub address (`HF_ENDPOINT`, for mirrors), else `https://huggingface.co`.
    pub endpoint: Option<String>,
}

impl HubConfig {
    /// Reads `HF_HUB_CACHE`, `HF_HOME`, `HF_HUB_OFFLINE` and `HF_TOKEN`.
    pub fn from_env() -> Self {
        let cache_dir = match std::env::var_os("HF_HUB_CACHE") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => Cache::from_env().path().clone(),
        };
        let offline = std::env::var("HF_HUB_OFFLINE")
            .map(|v| {
                matches!(
                    v.trim().to_ascii_lowercase().as_str(),
                    "1" | "true" | "yes" | "on"
                )
            })
            .unwrap_or(false);
        let token = std::env::var("HF_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .or_else(|| Cache::from_env().token());
        let endpoint = std::env::var("HF_ENDPOINT").ok().filter(|e| !e.is_empty());
        Self {
            cache_dir,
            offline,
            token,
            endpoint,
        }
    }
}

/// Resolves the files of one model to local paths, downloading hub files when needed.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    source: ModelSource,
    hub: HubConfig,
    progress: Progress,
    manifest: Option<Vec<String>>,
}

impl ModelFiles {
    /// Files of `source`, with hub settings from the environment.
    pub fn new(source: ModelSource, progress: Progress) -> Self {
        Self {
            source,
            hub: HubConfig::from_env(),
            progress,
            manifest: None,
        }
    }

    /// Files of `source` with explicit hub settings.
    pub fn with_hub(source: ModelSource, hub: HubConfig, progress: Progress) -> Self {
        Self {
            source,
            hub,
            progress,
            manifest: None,
        }
    }

    /// Restricts [`ModelFiles::list`] to these files: a catalog entry names the files of its
    /// model, where its hub repo may hold several models (e.g. one GGUF file per size).
    pub fn with_manifest(mut self, files: Vec<String>) -> Self {
        self.manifest = Some(files);
        self
    }

    /// Files of a `--model` argument: a catalog id brings its repo, revision and file list.
    pub fn from_spec(spec: &str, catalog: &Catalog, progress: Progress) -> Result<Self> {
        let files = Self::new(ModelSource::parse(spec, catalog)?, progress);
        Ok(match catalog.get(spec) {
            Some(entry) if matches!(files.source, ModelSource::Hub { .. }) => {
                files.with_manifest(entry.files.clone())
            }
            _ => files,
        })
    }

    /// The source.
    pub fn source(&self) -> &ModelSource {
        &self.source
    }

    /// The local path of `file`, downloading it from the hub if needed.
    pub fn get(&self, file: &str) -> Result<PathBuf> {
        self.get_optional(file)?.ok_or_else(|| match &self.source {
            ModelSource::Hub { repo, .. } => Error::HubNotFound {
                repo: repo.clone(),
                file: file.into(),
                status: 404,
            },
            ModelSource::Dir(p) | ModelSource::File(p) => Error::MissingFile {
                path: p.clone(),
                file: file.into(),
            },
        })
    }

    /// Like [`ModelFiles::get`], but a file the source does not have is `None`, not an error.
    pub fn get_optional(&self, file: &str) -> Result<Option<PathBuf>> {
        match &self.source {
            ModelSource::Dir(dir) => Ok(Some(dir.join(file)).filter(|p| p.is_file())),
            ModelSource::File(path) => {
                if path.file_name().is_some_and(|n| n == file) {
                    return Ok(Some(path.clone()));
                }
                let beside = path.parent().unwrap_or(Path::new(".")).join(file);
                Ok(Some(beside).filter(|p| p.is_file()))
            }
            ModelSource::Hub { repo, revision } => self.hub_get(repo, revision, file),
        }
    }

    /// The names of the files the source holds (a directory listing, or the hub's file list).
    pub fn list(&self) -> Result<Vec<String>> {
        if let Some(manifest) = &self.manifest {
            return Ok(manifest.clone());
        }
        match &self.source {
            ModelSource::Dir(dir) => list_dir(dir),
            ModelSource::File(path) => Ok(path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .into_iter()
                .collect()),
            ModelSource::Hub { repo, revision } => {
                if self.hub.offline {
                    let snapshot = self.cached_snapshot(repo, revision);
                    return snapshot
                        .map(|dir| list_dir(&dir))
                        .unwrap_or_else(|| Ok(Vec::new()));
                }
                let info = self
                    .api_repo(repo, revision)?
                    .info()
                    .map_err(|e| hub_error(repo, "file list", e))?;
                Ok(info.siblings.into_iter().map(|s| s.rfilename).collect())
            }
        }
    }

    fn hub_repo(repo: &str, revision: &str) -> Repo {
        Repo::with_revision(repo.to_string(), RepoType::Model, revision.to_string())
    }

    fn cached_snapshot(&self, repo: &str, revision: &str) -> Option<PathBuf> {
        let cache = Cache::new(self.hub.cache_dir.clone());
        let probe = cache
            .repo(Self::hub_repo(repo, revision))
            .get("config.json")?;
        probe.parent().map(Path::to_path_buf)
    }

    fn api_repo(&self, repo: &str, revision: &str) -> Result<ApiRepo> {
        let mut builder = ApiBuilder::new();
        if let Some(endpoint) = &self.hub.endpoint {
            builder = builder.with_endpoint(endpoint.clone());
        }
        let api = builder
            .with_cache_dir(self.hub.cache_dir.clone())
            .with_token(self.hub.token.clone())
            .with_progress(false)
            .build()
            .map_err(|e| Error::Hub {
                repo: repo.into(),
                message: e.to_string(),
            })?;
        Ok(api.repo(Self::hub_repo(repo, revision)))
    }

    fn hub_get(&self, repo: &str, revision: &str, file: &str) -> Result<Option<PathBuf>> {
        let cache = Cache::new(self.hub.cache_dir.clone());
        if let Some(path) = cache.repo(Self::hub_repo(repo, revision)).get(file) {
            return Ok(Some(path));
        }
        if self.hub.offline {
            return Err(Error::NotCached {
                repo: repo.into(),
                file: file.into(),
                cache: self.hub.cache_dir.clone(),
            });
        }
        let reporter = DownloadReporter {
            progress: self.progress.clone(),
            done: 0,
        };
        match self
            .api_repo(repo, revision)?
            .download_with_progress(file, reporter)
        {
            Ok(path) => Ok(Some(path)),
            Err(e) => match hub_error(repo, file, e) {
                Error::HubNotFound { status: 404, .. } => Ok(None),
                other => Err(other),
            },
        }
    }
}

fn list_dir(dir: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
        path: dir.into(),
        source,
    })?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}

fn hub_error(repo: &str, file: &str, err: hf_hub::api::sync::ApiError) -> Error {
    use hf_hub::api::sync::ApiError;
    match err {
        ApiError::RequestError(e) => match *e {
            ureq::Error::Status(status, _) if matches!(status, 401 | 403 | 404) => {
                Error::HubNotFound {
                    repo: repo.into(),
                    file: file.into(),
                    status,
                }
            }
            ureq::Error::Status(status, _) => Error::Hub {
                repo: repo.into(),
                message: format!("fetching {file}: HTTP {status}"),
            },
            ureq::Error::Transport(t) => Error::HubUnreachable {
                repo: repo.into(),
                detail: t.to_string().lines().next().unwrap_or_default().to_string(),
            },
        },
        ApiError::TooManyRetries(inner) => hub_error(repo, file, *inner),
        other => Error::Hub {
            repo: repo.into(),
            message: format!("fetching {file}: {other}"),
        },
    }
}

/// Adapts hf-hub's download callbacks to our [`Progress`].
struct DownloadReporter {
    progress: Progress,
    done: u64,
}

impl hf_hub::api::Progress for DownloadReporter {
    fn init(&mut self, size: usize, filename: &str) {
        self.done = 0;
        self.progress
            .begin(filename, Some(size as u64), Unit::Bytes);
    }

    fn update(&mut self, size: usize) {
        self.done += size as u64;
        self.progress.update(self.done);
    }

    fn finish(&mut self) {
        self.progress.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog::builtin().unwrap()
    }

    #[test]
    fn parses_hub_ids_and_revisions() {
        let hub = |r: &str, v: &str| ModelSource::Hub {
            repo: r.into(),
            revision: v.into(),
        };
        assert_eq!(
            ModelSource::parse("openai/whisper-tiny", &catalog()).unwrap(),
            hub("openai/whisper-tiny", "main")
        );
        assert_eq!(
            ModelSource::parse("openai/whisper-tiny@v1.0", &catalog()).unwrap(),
            hub("openai/whisper-tiny", "v1.0")
        );
        assert!(ModelSource::parse("openai/whisper-tiny@", &catalog()).is_err());
        assert!(ModelSource::parse("not-a-model", &catalog()).is_err());
        assert!(ModelSource::parse("./missing/dir", &catalog()).is_err());
        assert!(ModelSource::parse("missing.gguf", &catalog()).is_err());
    }

    #[test]
    fn catalog_ids_resolve_to_their_repo() {
        let entry = &catalog().models[0];
        match ModelSource::parse(&entry.id, &catalog()).unwrap() {
            ModelSource::Hub { repo, .. } => assert_eq!(repo, entry.repo),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn catalog_ids_list_their_own_files() {
        let catalog = catalog();
        let entry = catalog.models.iter().find(|m| m.format == "gguf").unwrap();
        let files = ModelFiles::from_spec(&entry.id, &catalog, Progress::none()).unwrap();
        assert_eq!(files.list().unwrap(), entry.files);
    }

    #[test]
    fn local_paths_win() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), "{}").unwrap();
        let spec = dir.path().to_str().unwrap();
        let source = ModelSource::parse(spec, &catalog()).unwrap();
        assert_eq!(source, ModelSource::Dir(dir.path().into()));
        let files = ModelFiles::new(source, Progress::none());
        assert!(files.get("config.json").is_ok());
        let err = files.get("model.safetensors").unwrap_err().to_string();
        assert!(err.contains("missing model.safetensors"), "{err}");
        assert_eq!(files.list().unwrap(), vec!["config.json".to_string()]);
    }

    #[test]
    fn offline_mode_reports_missing_cache_entries() {
        let cache = tempfile::tempdir().unwrap();
        let hub = HubConfig {
            cache_dir: cache.path().into(),
            offline: true,
            token: None,
            endpoint: None,
        };
        let source = ModelSource::Hub {
            repo: "openai/whisper-tiny".into(),
            revision: "main".into(),
        };
        let files = ModelFiles::with_hub(source, hub, Progress::none());
        let err = files.get("config.json").unwrap_err().to_string();
        assert!(err.contains("HF_HUB_OFFLINE"), "{err}");
    }

    #[test]
    fn unreachable_hub_is_one_line_with_advice() {
        let cache = tempfile::tempdir().unwrap();
        let hub = HubConfig {
            cache_dir: cache.path().into(),
            offline: false,
            token: None,
            endpoint: Some("http://127.0.0.1:9".into()),
        };
        let source = ModelSource::Hub {
            repo: "openai/whisper-tiny".into(),
            revision: "main".into(),
        };
        let files = ModelFiles::with_hub(source, hub, Progress::none());
        let err = files.get("config.json").unwrap_err().to_string();
        assert!(!err.contains('\n'), "{err}");
        assert!(err.contains("--model PATH"), "{err}");
    }
}
