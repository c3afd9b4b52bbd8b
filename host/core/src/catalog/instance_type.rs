//! Instance types (issue 35): named resource classes a service is deployed on
//! (`service deploy --instance-type large`) instead of separate flags only: an instance's
//! memory cap and the threads its inference calls may use (the cores the host's budget
//! promises it). Built in, with the seed's wording (Dataloop's `regular-s`, `highmem-m`, ...)
//! mapped onto them; a home may add or redefine types in `HOME/instance-types.toml`:
//!
//! ```toml
//! [detector-large]
//! memory_mb = 6144
//! inference_threads = 3
//! about = "the big YOLO"
//! ```
//!
//! A type is resolved when a service is deployed: the service keeps the values (and the type's
//! name, to show), so the table may change later without changing what runs. The seed's GPU
//! types are refused naming why: no engine here runs on a GPU.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::catalog::settings::MAX_INFERENCE_THREADS;
use crate::error::{Error, Result};

/// Where a home's own types are.
pub const FILE: &str = "instance-types.toml";

/// One type: what each instance of a service deployed on it gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceType {
    /// The instance's memory cap, MiB: the guest's memory and what the host holds for it.
    pub memory_mb: u32,
    /// Threads one inference call may use (the cores the host's budget counts for it).
    #[serde(default = "one")]
    pub inference_threads: u32,
    /// What it is for.
    #[serde(default)]
    pub about: String,
}

fn one() -> u32 {
    1
}

/// The built-in types: (name, the seed's names for it, memory MiB, inference threads, about).
const BUILT_IN: [(&str, &[&str], u32, u32, &str); 5] = [
    (
        "small",
        &["regular-xs"],
        512,
        1,
        "a small model: res10, CenterFace",
    ),
    (
        "regular",
        &["regular-s"],
        1024,
        1,
        "what a service gets without a type",
    ),
    (
        "large",
        &["regular-m"],
        4096,
        2,
        "a larger model, two inference threads",
    ),
    (
        "xlarge",
        &["regular-l"],
        8192,
        4,
        "a large model, four inference threads",
    ),
    (
        "highmem",
        &["highmem-xs", "highmem-s", "highmem-m", "highmem-l"],
        16384,
        2,
        "very large images or models",
    ),
];

/// The types a deploy may name: the built-in ones and the home's.
#[derive(Debug, Clone)]
pub struct InstanceTypes {
    types: BTreeMap<String, InstanceType>,
    aliases: BTreeMap<&'static str, &'static str>,
}

impl InstanceTypes {
    pub fn built_in() -> Self {
        let mut types = BTreeMap::new();
        let mut aliases = BTreeMap::new();
        for (name, seed, memory_mb, inference_threads, about) in BUILT_IN {
            let about = about.to_string();
            let kind = InstanceType {
                memory_mb,
                inference_threads,
                about,
            };
            types.insert(name.to_string(), kind);
            for alias in seed {
                aliases.insert(*alias, name);
            }
        }
        InstanceTypes { types, aliases }
    }

    /// The built-in types and, over them, those of `HOME/instance-types.toml` if there is one
    /// (read strictly: an unknown field or a value out of range names the type and the file).
    pub fn of_home(home: &Path) -> Result<Self> {
        let mut all = Self::built_in();
        let path = home.join(FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(all),
            Err(e) => return Err(invalid(format!("cannot read {}: {e}", path.display()))),
        };
        let declared: BTreeMap<String, InstanceType> = toml::from_str(&text)
            .map_err(|e| invalid(format!("{}: {}", path.display(), e.message())))?;
        for (name, kind) in declared {
            check(&name, &kind).map_err(|e| invalid(format!("{}: {e}", path.display())))?;
            all.types.insert(name, kind);
        }
        Ok(all)
    }

    /// The type named `name` (or the seed's name for it).
    pub fn get(&self, name: &str) -> Result<(&str, &InstanceType)> {
        let name = self.aliases.get(name).copied().unwrap_or(name);
        if let Some((name, kind)) = self.types.get_key_value(name) {
            return Ok((name, kind));
        }
        if name.starts_with("gpu") {
            return Err(invalid(format!(
                "`{name}` asks for a GPU, and no engine here runs on one (tract in the sandbox, \
                 ONNX Runtime's CPU provider on the host): choose one of {}",
                self.names()
            )));
        }
        Err(invalid(format!(
            "no instance type `{name}`: there are {} (and the seed's {}); a home adds its own \
             in {FILE}",
            self.names(),
            self.aliases.keys().copied().collect::<Vec<_>>().join(", ")
        )))
    }

    /// Each type by name.
    pub fn list(&self) -> &BTreeMap<String, InstanceType> {
        &self.types
    }

    fn names(&self) -> String {
        self.types.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// A home's type: a name a deploy can give, values a service could be deployed with.
fn check(name: &str, kind: &InstanceType) -> std::result::Result<(), String> {
    let named = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !named {
        return Err(format!(
            "`{name}` is not a type name (letters, digits, - and _)"
        ));
    }
    if kind.memory_mb == 0 {
        return Err(format!("type `{name}`: memory_mb must be at least 1"));
    }
    if kind.inference_threads == 0 || kind.inference_threads > MAX_INFERENCE_THREADS {
        return Err(format!(
            "type `{name}`: inference_threads must be 1 to {MAX_INFERENCE_THREADS}, got {}",
            kind.inference_threads
        ));
    }
    Ok(())
}

fn invalid(message: String) -> Error {
    Error::invalid("instance-type", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home_with(types: &str) -> crate::files::Scratch {
        let home = crate::files::Scratch::new(&std::env::temp_dir(), "types").expect("a home");
        std::fs::write(home.path().join(FILE), types).expect("writes");
        home
    }

    #[test]
    fn the_seeds_names_are_ours() {
        let types = InstanceTypes::built_in();
        let (name, large) = types.get("regular-m").expect("the seed's medium");
        assert_eq!((name, large.memory_mb), ("large", 4096));
        let err = types.get("gpu-t4-s").expect_err("no GPU").to_string();
        assert!(err.contains("asks for a GPU"), "{err}");
        let err = types.get("huge").expect_err("unknown").to_string();
        assert!(
            err.contains("small, xlarge") && err.contains("regular-s"),
            "{err}"
        );
    }

    #[test]
    fn a_home_adds_and_redefines_types_strictly() {
        let home =
            home_with("[big]\nmemory_mb = 6144\ninference_threads = 3\n[small]\nmemory_mb = 256\n");
        let types = InstanceTypes::of_home(home.path()).expect("reads");
        assert_eq!(types.get("big").expect("added").1.inference_threads, 3);
        assert_eq!(types.get("regular-xs").expect("alias").1.memory_mb, 256);
        for (bad, says) in [
            (
                "[big]\nmemory_mb = 6144\ncores = 3\n",
                "unknown field `cores`",
            ),
            ("[big]\nmemory_mb = 0\n", "memory_mb must be at least 1"),
            (
                "[big]\nmemory_mb = 1\ninference_threads = 65\n",
                "inference_threads must be 1 to 64",
            ),
            ("[\"a b\"]\nmemory_mb = 1\n", "not a type name"),
            (
                "[big]\ninference_threads = 2\n",
                "missing field `memory_mb`",
            ),
        ] {
            let err = InstanceTypes::of_home(home_with(bad).path())
                .expect_err(bad)
                .to_string();
            assert!(err.contains(says) && err.contains(FILE), "{bad}: {err}");
        }
    }
}
