//! The crate's error type: every variant names what failed (file, tensor, layer, op) and what was
//! expected, so that a CLI can print it as one line.

use std::path::PathBuf;

/// Errors of the sglrp library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A weights file that is not a valid safetensors file, or whose tensors do not describe a model.
    #[error("{path}: {message}")]
    Weights { path: PathBuf, message: String },

    /// A single tensor of a weights file is missing, misshapen, of an unsupported dtype or not finite.
    #[error("{path}: tensor `{tensor}`: {message}")]
    Tensor {
        path: PathBuf,
        tensor: String,
        message: String,
    },

    /// An architecture description that cannot be built.
    #[error("architecture: {0}")]
    Architecture(String),

    /// An image that cannot be decoded or used.
    #[error("{path}: {message}")]
    Image { path: PathBuf, message: String },

    /// Outside data that cannot be used: a manifest, a box file, a synset or class-name file; names
    /// the file and, where there is one, the line.
    #[error("{}: {message}", location(path, *line))]
    Data {
        path: PathBuf,
        /// From 1.
        line: Option<usize>,
        message: String,
    },

    /// A request that does not fit the model (target out of range, wrong input size, …).
    #[error("{0}")]
    Request(String),

    /// A backend (device) failure, naming the op or kernel.
    #[error("{backend} backend: {op}: {message}")]
    Backend {
        backend: &'static str,
        op: String,
        message: String,
    },
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `file` or `file:line`.
fn location(path: &std::path::Path, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{}:{line}", path.display()),
        None => path.display().to_string(),
    }
}

impl Error {
    pub(crate) fn weights(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Weights {
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn tensor(
        path: impl Into<PathBuf>,
        tensor: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Tensor {
            path: path.into(),
            tensor: tensor.into(),
            message: message.into(),
        }
    }

    pub(crate) fn data(
        path: impl Into<PathBuf>,
        line: Option<usize>,
        message: impl Into<String>,
    ) -> Self {
        Error::Data {
            path: path.into(),
            line,
            message: message.into(),
        }
    }
}
