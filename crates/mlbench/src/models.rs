//! `mlbench models list|pull`.

use anyhow::{anyhow, Result};
use mlbench_core::catalog::Catalog;
use mlbench_core::source::{ModelFiles, ModelSource};

use crate::cli::ModelsCommand;

pub fn run(cmd: ModelsCommand) -> Result<()> {
    let catalog = Catalog::builtin()?;
    match cmd {
        ModelsCommand::List { task, json } => {
            let entries: Vec<_> = catalog
                .models
                .iter()
                .filter(|m| task.as_ref().is_none_or(|t| &m.task == t))
                .collect();
            if json {
                crate::write::output(None, &(serde_json::to_string_pretty(&entries)? + "\n"))
            } else {
                crate::write::output(None, &table(&entries))
            }
        }
        ModelsCommand::Pull { id } => {
            let entry = catalog
                .get(&id)
                .ok_or_else(|| anyhow!("unknown model id '{id}' (see `mlbench models list`)"))?;
            let source = ModelSource::Hub {
                repo: entry.repo.clone(),
                revision: entry.revision.clone(),
            };
            let files = ModelFiles::new(source, crate::progress::bars(false));
            for f in &entry.files {
                let path = files.get(f)?;
                eprintln!("{f} -> {}", path.display());
            }
            Ok(())
        }
    }
}

fn table(entries: &[&mlbench_core::catalog::CatalogEntry]) -> String {
    let task_width = entries
        .iter()
        .map(|m| m.task.len())
        .max()
        .unwrap_or(0)
        .max(4);
    let mut out = format!(
        "{:<28} {:<task_width$} {:<13} {:>8}  {:<11} {}\n",
        "ID", "TASK", "FORMAT", "SIZE", "LICENSE", "REPO"
    );
    for m in entries {
        let id = if m.default {
            format!("{} *", m.id)
        } else {
            m.id.clone()
        };
        out += &format!(
            "{:<28} {:<task_width$} {:<13} {:>5} MB  {:<11} {}\n",
            id, m.task, m.format, m.size_mb, m.license, m.repo
        );
    }
    out + "(* = default for its task)\n"
}
