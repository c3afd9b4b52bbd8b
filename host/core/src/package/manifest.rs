//! `prelabel.toml`: what a package is (name, version, component, artifacts) and what its
//! module declares (typed init inputs with defaults, the functions it exports).
//!
//! Parsing rejects unknown fields; [`Manifest::validate`] checks what the types cannot
//! (unique names, defaults of the declared type). Both name the field that is wrong.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::runtime::InputValue;

/// The manifest's file name inside a package directory.
pub const FILE_NAME: &str = "prelabel.toml";

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Package name: lowercase letters, digits and `-`.
    pub name: String,
    /// The author's version of the package (each push also gets a revision number).
    pub version: String,
    #[serde(default)]
    pub description: String,
    /// The component (`.wasm`), relative to the manifest.
    pub component: PathBuf,
    /// Files the component can ask for by name (model weights).
    #[serde(default)]
    pub artifacts: Vec<ArtifactDecl>,
    /// How `prelabel watch` rebuilds the component: a program and its arguments (no shell),
    /// run in the manifest's folder. Without it a folder with a `Cargo.toml` is built with
    /// `cargo build --release --target wasm32-wasip2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<Vec<String>>,
    pub module: Module,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactDecl {
    pub name: String,
    /// Relative to the manifest.
    pub path: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Module {
    pub name: String,
    #[serde(default)]
    pub init_inputs: Vec<InitInputDecl>,
    /// The hosts the component may call over `wasi:http` (`https://api.example.com`,
    /// `http://127.0.0.1:9000`); none by default. See [`crate::runtime::outbound`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_outbound_hosts: Vec<String>,
    /// The labels its boxes can carry (`prelabel new onnx` writes the model's classes): what
    /// Label Studio's `setup` matches to a project's labels before any box is stored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    pub functions: Vec<FunctionDecl>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InitInputDecl {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: InputType,
    /// Without a default, the input is required at deploy time.
    pub default: Option<toml::Value>,
    #[serde(default)]
    pub description: String,
    /// A secret (an API key): its value at deploy names a secret stored with `prelabel
    /// secret set`, and only `init` sees what that secret holds (`secret.rs`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secret: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionDecl {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub inputs: Vec<FunctionInput>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionInput {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: FunctionInputType,
}

/// What a function can take. Only items today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FunctionInputType {
    Item,
}

/// The type of an init input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    String,
    Float,
    Integer,
    Boolean,
}

impl fmt::Display for InputType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InputType::String => "string",
            InputType::Float => "float",
            InputType::Integer => "integer",
            InputType::Boolean => "boolean",
        })
    }
}

impl InputType {
    /// "a float", "an integer": for messages.
    pub fn with_article(self) -> String {
        match self {
            InputType::Integer => "an integer".into(),
            other => format!("a {other}"),
        }
    }

    /// Parses a command-line value (`--init min_confidence=0.7`) as this type.
    pub fn parse(self, text: &str) -> Result<InputValue, String> {
        let bad = || format!("expected {}, got `{text}`", self.with_article());
        Ok(match self {
            InputType::String => InputValue::String(text.to_string()),
            InputType::Float => InputValue::Float(
                text.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .ok_or_else(bad)?,
            ),
            InputType::Integer => InputValue::Integer(text.parse().map_err(|_| bad())?),
            InputType::Boolean => InputValue::Boolean(text.parse().map_err(|_| bad())?),
        })
    }

    /// Checks a TOML or JSON-like value against this type. An integer is a valid float.
    pub fn accept(self, value: &InputValue) -> Result<InputValue, String> {
        match (self, value) {
            (InputType::Float, InputValue::Integer(i)) => Ok(InputValue::Float(*i as f64)),
            (InputType::Float, InputValue::Float(f)) if !f.is_finite() => {
                Err(format!("expected a finite float, got {f}"))
            }
            (InputType::String, InputValue::String(_))
            | (InputType::Float, InputValue::Float(_))
            | (InputType::Integer, InputValue::Integer(_))
            | (InputType::Boolean, InputValue::Boolean(_)) => Ok(value.clone()),
            _ => Err(format!("expected {}, got {value}", self.with_article())),
        }
    }
}

/// A manifest's default, as an init input value (a table or an array is none).
fn input_from_toml(value: &toml::Value) -> Option<InputValue> {
    Some(match value {
        toml::Value::String(s) => InputValue::String(s.clone()),
        toml::Value::Integer(i) => InputValue::Integer(*i),
        toml::Value::Float(f) => InputValue::Float(*f),
        toml::Value::Boolean(b) => InputValue::Boolean(*b),
        _ => return None,
    })
}

/// A manifest that cannot be read or does not make sense. Names the file and the field.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("{}: `{field}`: {message}", path.display())]
    Invalid {
        path: PathBuf,
        field: String,
        message: String,
    },
}

/// Init input values given for a service that do not fit the module's declarations.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InitError {
    #[error("unknown init input `{name}` (the module declares: {known})")]
    Unknown { name: String, known: String },
    #[error("init input `{name}`: {message}")]
    WrongType { name: String, message: String },
    #[error("init input `{name}` is required (type {ty}) and has no default")]
    Missing { name: String, ty: InputType },
    #[error("`{0}` is not of the form key=value")]
    Syntax(String),
}

impl Manifest {
    /// Reads and validates `path`.
    pub fn from_file(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_str(&text, path)
    }

    /// Parses and validates manifest text; `path` is only used in messages.
    pub fn from_str(text: &str, path: &Path) -> Result<Self, ManifestError> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| ManifestError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        manifest.validate(path)?;
        Ok(manifest)
    }

    /// Checks what the types alone cannot.
    pub fn validate(&self, path: &Path) -> Result<(), ManifestError> {
        let invalid = |field: String, message: String| ManifestError::Invalid {
            path: path.to_path_buf(),
            field,
            message,
        };
        if !is_name(&self.name) {
            return Err(invalid(
                "name".into(),
                format!(
                    "`{}` must be lowercase letters, digits and `-`, starting with a letter",
                    self.name
                ),
            ));
        }
        if self.version.trim().is_empty() {
            return Err(invalid("version".into(), "must not be empty".into()));
        }
        if self.component.as_os_str().is_empty() {
            return Err(invalid(
                "component".into(),
                "must be the path of a .wasm component".into(),
            ));
        }
        if let Some(build) = &self.build
            && build
                .first()
                .is_none_or(|program| program.trim().is_empty())
        {
            return Err(invalid(
                "build".into(),
                "must name a program to run, then its arguments: [\"make\", \"component\"]".into(),
            ));
        }
        unique(
            self.artifacts.iter().map(|a| a.name.as_str()),
            "artifacts",
            &invalid,
        )?;
        for (i, artifact) in self.artifacts.iter().enumerate() {
            if artifact.name.trim().is_empty() {
                return Err(invalid(
                    format!("artifacts[{i}].name"),
                    "must not be empty".into(),
                ));
            }
        }
        if let Err(e) = self.allowed_hosts() {
            return Err(invalid(
                "module.allowed_outbound_hosts".into(),
                e.to_string(),
            ));
        }
        unique(
            self.module.labels.iter().map(String::as_str),
            "module.labels",
            &invalid,
        )?;
        if self.module.labels.iter().any(|l| l.trim().is_empty()) {
            return Err(invalid(
                "module.labels".into(),
                "a label must not be empty".into(),
            ));
        }
        self.check_init_inputs(&invalid)?;
        self.check_functions(&invalid)
    }

    /// Init inputs: unique names, secrets as strings without a default, defaults of their type.
    fn check_init_inputs(
        &self,
        invalid: &impl Fn(String, String) -> ManifestError,
    ) -> Result<(), ManifestError> {
        unique(
            self.module.init_inputs.iter().map(|i| i.name.as_str()),
            "module.init_inputs",
            invalid,
        )?;
        for input in &self.module.init_inputs {
            if input.secret && (input.ty != InputType::String || input.default.is_some()) {
                return Err(invalid(
                    format!("module.init_inputs.{}", input.name),
                    "a secret is a string without a default (a default would be in the package for anyone to read)".into(),
                ));
            }
            if let Some(default) = &input.default {
                let field = format!("module.init_inputs.{}.default", input.name);
                let value = input_from_toml(default).ok_or_else(|| {
                    invalid(
                        field.clone(),
                        format!("expected {}, got {default}", input.ty.with_article()),
                    )
                })?;
                input.ty.accept(&value).map_err(|m| invalid(field, m))?;
            }
        }
        Ok(())
    }

    /// Functions: at least one, unique names, and no `init` (the host calls that one).
    fn check_functions(
        &self,
        invalid: &impl Fn(String, String) -> ManifestError,
    ) -> Result<(), ManifestError> {
        if self.module.functions.is_empty() {
            return Err(invalid(
                "module.functions".into(),
                "declare at least one function".into(),
            ));
        }
        unique(
            self.module.functions.iter().map(|f| f.name.as_str()),
            "module.functions",
            invalid,
        )?;
        if self.module.functions.iter().any(|f| f.name == "init") {
            return Err(invalid(
                "module.functions.init".into(),
                "`init` is called by the host with the init inputs; it is not a function to declare".into(),
            ));
        }
        Ok(())
    }

    /// The hosts the package declares its guest may call (`module.allowed_outbound_hosts`).
    pub fn allowed_hosts(
        &self,
    ) -> Result<crate::runtime::outbound::AllowedHosts, crate::runtime::outbound::OutboundError>
    {
        crate::runtime::outbound::AllowedHosts::parse(&self.module.allowed_outbound_hosts)
    }

    /// The init inputs declared secret.
    pub fn secrets(&self) -> impl Iterator<Item = &InitInputDecl> {
        self.module.init_inputs.iter().filter(|i| i.secret)
    }

    /// The declared default of every init input that has one.
    pub fn defaults(&self) -> BTreeMap<String, InputValue> {
        self.module
            .init_inputs
            .iter()
            .filter_map(|i| {
                let value = input_from_toml(i.default.as_ref()?)?;
                Some((i.name.clone(), i.ty.accept(&value).ok()?))
            })
            .collect()
    }

    /// The values `init` receives: defaults overridden by `given`, each checked against
    /// its declared type; every declared input ends up with a value or this is an error.
    pub fn resolve_init(
        &self,
        given: &BTreeMap<String, InputValue>,
    ) -> Result<BTreeMap<String, InputValue>, InitError> {
        let mut values = self.defaults();
        for (name, value) in given {
            let value =
                self.declared(name)?
                    .ty
                    .accept(value)
                    .map_err(|message| InitError::WrongType {
                        name: name.clone(),
                        message,
                    })?;
            values.insert(name.clone(), value);
        }
        for decl in &self.module.init_inputs {
            if !values.contains_key(&decl.name) {
                return Err(InitError::Missing {
                    name: decl.name.clone(),
                    ty: decl.ty,
                });
            }
        }
        Ok(values)
    }

    /// The declaration of init input `name`, or an error listing the declared ones.
    fn declared(&self, name: &str) -> Result<&InitInputDecl, InitError> {
        let inputs = &self.module.init_inputs;
        inputs
            .iter()
            .find(|i| i.name == name)
            .ok_or_else(|| InitError::Unknown {
                name: name.to_string(),
                known: inputs
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Parses `key=value` pairs from the command line using the declared types.
    pub fn parse_init_args(
        &self,
        args: &[String],
    ) -> Result<BTreeMap<String, InputValue>, InitError> {
        let mut given = BTreeMap::new();
        for arg in args {
            let (name, text) = arg
                .split_once('=')
                .ok_or_else(|| InitError::Syntax(arg.clone()))?;
            let value =
                self.declared(name)?
                    .ty
                    .parse(text)
                    .map_err(|message| InitError::WrongType {
                        name: name.to_string(),
                        message,
                    })?;
            given.insert(name.to_string(), value);
        }
        Ok(given)
    }
}

pub(crate) fn is_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn unique<'a>(
    names: impl Iterator<Item = &'a str>,
    field: &str,
    invalid: &impl Fn(String, String) -> ManifestError,
) -> Result<(), ManifestError> {
    let mut seen = BTreeSet::new();
    for name in names {
        if !seen.insert(name) {
            return Err(invalid(
                field.to_string(),
                format!("`{name}` is declared twice"),
            ));
        }
    }
    Ok(())
}
