//! Where config validation reads the outside world from: environment variables and files.
//!
//! [`Config::from_toml_str`](super::Config::from_toml_str) takes a `&dyn Env` so that it
//! stays pure: unit tests hand it a [`MapEnv`] and never touch the process environment
//! or the filesystem (see STYLE habit 4).

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// The environment a config file is validated against.
pub trait Env {
    /// The value of an environment variable, or `None` when it is not set.
    fn var(&self, name: &str) -> Option<String>;

    /// The contents of a file. Paths reaching here are already resolved against
    /// [`Env::base_dir`].
    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>>;

    /// The folder relative paths in the config file are resolved against: the
    /// folder holding the config file.
    fn base_dir(&self) -> &Path;
}

/// The real process environment and filesystem.
#[derive(Clone, Debug)]
pub struct ProcessEnv {
    base_dir: PathBuf,
}

/// An in-memory [`Env`] for tests: variables and files from maps.
///
/// Its `Debug` lists names only, never values, because the values are secrets.
#[derive(Clone, Default)]
pub struct MapEnv {
    vars: HashMap<String, String>,
    files: HashMap<PathBuf, Vec<u8>>,
    base_dir: PathBuf,
}

// === impl ProcessEnv ===

impl ProcessEnv {
    pub fn new(base_dir: impl Into<PathBuf>) -> Self {
        Self {
            base_dir: base_dir.into(),
        }
    }

    /// Resolves relative paths against the folder of `config_path` (`.` for a bare file name).
    pub fn for_config_file(config_path: &Path) -> Self {
        match config_path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => Self::new(dir),
            _ => Self::new("."),
        }
    }
}

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        // A value that is not UTF-8 is still "set"; the lossy form keeps it non-empty.
        std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
    }

    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn base_dir(&self) -> &Path {
        &self.base_dir
    }
}

// === impl MapEnv ===

impl MapEnv {
    /// An empty environment whose config file lives in `base_dir`.
    pub fn new(base_dir: impl Into<PathBuf>) -> Self {
        Self {
            base_dir: base_dir.into(),
            ..Self::default()
        }
    }

    pub fn var(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(name.into(), value.into());
        self
    }

    /// Adds a file at `path` (relative paths are taken relative to the base dir).
    pub fn file(mut self, path: impl AsRef<Path>, contents: impl Into<Vec<u8>>) -> Self {
        let path = self.base_dir.join(path);
        self.files.insert(path, contents.into());
        self
    }
}

impl Env for MapEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }

    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn base_dir(&self) -> &Path {
        &self.base_dir
    }
}

impl fmt::Debug for MapEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapEnv")
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .field("files", &self.files.keys().collect::<Vec<_>>())
            .field("base_dir", &self.base_dir)
            .finish()
    }
}
