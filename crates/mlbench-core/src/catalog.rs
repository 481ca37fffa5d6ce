//! The model catalog: for each task the default model and the known alternatives.
//!
//! The catalog is `models/catalog.json` in the repository, compiled into the binary so that
//! `mlbench models list` works anywhere. Each entry names a hub repo, revision, the files a
//! pipeline needs, the weight format, licence and approximate download size.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

const BUILTIN: &str = include_str!("../../../models/catalog.json");

/// One model of the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogEntry {
    /// Short id users type (`whisper-tiny.en`).
    pub id: String,
    /// Task: `stt`, `tts`, `classify-image`, ...
    pub task: String,
    /// Hugging Face repo id.
    pub repo: String,
    /// Branch, tag or commit.
    pub revision: String,
    /// Weight format (`transformers`, `ct2`, `gguf`).
    pub format: String,
    /// Files a pipeline fetches.
    pub files: Vec<String>,
    /// Licence of the weights.
    pub license: String,
    /// Approximate download size in megabytes.
    pub size_mb: u64,
    /// Whether this is the task's default model.
    #[serde(default)]
    pub default: bool,
    /// One line about the model.
    #[serde(default)]
    pub description: String,
}

/// The whole catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    /// All entries, grouped by task in file order.
    pub models: Vec<CatalogEntry>,
}

impl Catalog {
    /// The catalog compiled into this build.
    pub fn builtin() -> Result<Self> {
        Self::from_json(BUILTIN)
    }

    /// Parses a catalog file's contents.
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| Error::InvalidSpec(format!("model catalog: {e}")))
    }

    /// The entry with this id.
    pub fn get(&self, id: &str) -> Option<&CatalogEntry> {
        self.models.iter().find(|m| m.id == id)
    }

    /// The default model of a task.
    pub fn default_for(&self, task: &str) -> Option<&CatalogEntry> {
        self.models.iter().find(|m| m.task == task && m.default)
    }

    /// All entries of a task.
    pub fn for_task<'a>(&'a self, task: &'a str) -> impl Iterator<Item = &'a CatalogEntry> + 'a {
        self.models.iter().filter(move |m| m.task == task)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn builtin_catalog_is_consistent() {
        let catalog = Catalog::builtin().unwrap();
        let mut ids = HashSet::new();
        for m in &catalog.models {
            assert!(ids.insert(m.id.clone()), "duplicate id {}", m.id);
            assert!(m.repo.contains('/'), "{}", m.id);
            assert!(!m.files.is_empty(), "{}", m.id);
        }
        let tasks: HashSet<_> = catalog.models.iter().map(|m| m.task.as_str()).collect();
        for task in tasks {
            let defaults = catalog.for_task(task).filter(|m| m.default).count();
            assert_eq!(defaults, 1, "task {task} needs exactly one default");
        }
        assert!(catalog.default_for("stt").is_some());
    }
}
