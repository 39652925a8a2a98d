//! What is wrong with a resource's input, and where: one error type for the checks of
//! every resource's settings (an image's composition, a package's container options, a
//! disk's format settings), so that the Terraform side maps each one to its attribute in
//! one way ([`crate::resources`]) and the checks themselves are plain functions with unit
//! tests.

use std::fmt;

/// One step of the path to an offending value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Field(&'static str),
    Index(usize),
    Key(String),
}

/// A bad input: its path (`file[2].mode`), what is wrong, and a title for the kind of
/// problem when it has one of its own ("Unknown format"; else `Invalid <path>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub path: Vec<Step>,
    pub message: String,
    pub summary: Option<String>,
}

impl FieldError {
    /// A problem with the attribute `attribute`.
    pub fn new(attribute: &'static str, message: impl Into<String>) -> FieldError {
        FieldError::at(vec![Step::Field(attribute)], message)
    }

    /// A problem with the value at `path`.
    pub fn at(path: Vec<Step>, message: impl Into<String>) -> FieldError {
        FieldError { path, message: message.into(), summary: None }
    }

    /// The same problem, one list element down.
    pub fn index(mut self, index: usize) -> FieldError {
        self.path.push(Step::Index(index));
        self
    }

    /// The same problem, one field down.
    pub fn field(mut self, field: &'static str) -> FieldError {
        self.path.push(Step::Field(field));
        self
    }

    /// With a title of its own.
    pub fn titled(mut self, summary: impl Into<String>) -> FieldError {
        self.summary = Some(summary.into());
        self
    }

    /// The top-level attribute it concerns.
    pub fn attribute(&self) -> Option<&'static str> {
        match self.path.first() {
            Some(Step::Field(name)) => Some(name),
            _ => None,
        }
    }

    /// The path as the configuration writes it: `file[2].mode`, `sysctl["net.ipv4.ip_forward"]`.
    pub fn path_text(&self) -> String {
        let mut text = String::new();
        for step in &self.path {
            match step {
                Step::Field(name) if text.is_empty() => text.push_str(name),
                Step::Field(name) => {
                    text.push('.');
                    text.push_str(name);
                }
                Step::Index(index) => text.push_str(&format!("[{index}]")),
                Step::Key(key) => text.push_str(&format!("[{key:?}]")),
            }
        }
        text
    }

    /// Its title: its own, else `Invalid <path>`.
    pub fn summary(&self) -> String {
        self.summary.clone().unwrap_or_else(|| format!("Invalid {}", self.path_text()))
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path_text(), self.message)
    }
}

impl std::error::Error for FieldError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_reads_as_the_configuration_writes_it() {
        let error = FieldError::new("file", "is relative").index(2).field("path");
        assert_eq!(error.to_string(), "file[2].path: is relative");
        assert_eq!(error.summary(), "Invalid file[2].path");
        assert_eq!(error.attribute(), Some("file"));
        let keyed = FieldError::at(vec![Step::Field("sysctl"), Step::Key("net.ipv4.ip_forward".into())], "x");
        assert_eq!(keyed.path_text(), "sysctl[\"net.ipv4.ip_forward\"]");
        assert_eq!(FieldError::new("format", "no").titled("Unknown format").summary(), "Unknown format");
    }
}
