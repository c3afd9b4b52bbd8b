//! `pipeline.toml`: a pipeline as its author writes it, a named graph of nodes (a source of
//! item events, service functions, review tasks, datasets) and edges that carry conditions on
//! what the node before produced. Parsing rejects unknown fields (a misspelt condition would
//! otherwise let every item through); [`Spec::validate`] checks what the types cannot (unique
//! node ids, edges between nodes that exist, one source without inputs, no cycle, each
//! condition where it means something) and names what is wrong. What needs the store (the
//! services, their functions, the source's filters) is checked when it is applied
//! (`work/pipeline/`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::package::manifest::is_name;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The pipeline's name: lowercase letters, digits and `-`.
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub nodes: Vec<Node>,
    #[serde(default)]
    pub edges: Vec<Edge>,
}

/// One step of the graph, named by its `id` in edges.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Node {
    /// Where items enter: their events (created, updated) in one dataset or all, matching
    /// the trigger filters.
    Source {
        id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dataset: Option<String>,
        #[serde(default = "both_events")]
        on: Vec<Event>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        filters: Vec<String>,
    },
    /// A service's function run on the item, with the annotations earlier nodes stored on it.
    Function {
        id: String,
        service: String,
        #[serde(default = "detect")]
        function: String,
    },
    /// A review task: the item waits for a person, who completes or discards it.
    Task { id: String, task: String },
    /// The item (or the item a function made) put into a dataset.
    Dataset { id: String, dataset: String },
}

/// An item event a source takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    Created,
    Updated,
}

fn both_events() -> Vec<Event> {
    vec![Event::Created, Event::Updated]
}

fn detect() -> String {
    "detect".into()
}

impl Node {
    pub fn id(&self) -> &str {
        match self {
            Node::Source { id, .. }
            | Node::Function { id, .. }
            | Node::Task { id, .. }
            | Node::Dataset { id, .. } => id,
        }
    }

    /// The kind's name, as the file spells it.
    pub fn kind(&self) -> &'static str {
        match self {
            Node::Source { .. } => "source",
            Node::Function { .. } => "function",
            Node::Task { .. } => "task",
            Node::Dataset { .. } => "dataset",
        }
    }
}

/// From one node to the next, taken when its condition holds.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Edge {
    pub from: String,
    pub to: String,
    #[serde(default, skip_serializing_if = "Condition::is_always")]
    pub when: Condition,
}

/// What must hold of the node before for an item to go on. After a function: its
/// annotations on the item that have one of `labels` (any label when empty) and a confidence
/// within `min_confidence..=max_confidence`, counted, between `min_count` (default 1 when a
/// label or confidence is named and `max_count` is not, else 0) and `max_count`. After a
/// task: the person's outcome.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_confidence: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_confidence: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}

/// What a person did with an item of a review task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Completed,
    Discarded,
}

crate::named::named!(Outcome {
    Completed => "completed",
    Discarded => "discarded",
});

impl Condition {
    pub fn is_always(&self) -> bool {
        self == &Condition::default()
    }

    /// The conditions on annotations this one sets, by their names in the file.
    fn on_annotations(&self) -> Vec<&'static str> {
        [
            ("min_count", self.min_count.is_some()),
            ("max_count", self.max_count.is_some()),
            ("labels", !self.labels.is_empty()),
            ("min_confidence", self.min_confidence.is_some()),
            ("max_confidence", self.max_confidence.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }

    /// Whether a person's `outcome` lets an item through (any, when the edge names none).
    pub fn holds_outcome(&self, outcome: Outcome) -> bool {
        self.outcome.is_none_or(|o| o == outcome)
    }

    /// Whether annotations `(label, confidence)` let an item through.
    pub fn holds(&self, annotations: &[(&str, f64)]) -> bool {
        let matching = annotations
            .iter()
            .filter(|(label, confidence)| {
                (self.labels.is_empty() || self.labels.iter().any(|l| l == label))
                    && self.min_confidence.is_none_or(|min| *confidence >= min)
                    && self.max_confidence.is_none_or(|max| *confidence <= max)
            })
            .count();
        let named = (!self.labels.is_empty()
            || self.min_confidence.is_some()
            || self.max_confidence.is_some())
            && self.max_count.is_none();
        let min = self.min_count.unwrap_or(u32::from(named)) as usize;
        matching >= min && self.max_count.is_none_or(|max| matching <= max as usize)
    }
}

/// Why a pipeline file is refused: the file, and what in it is wrong.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    /// A field whose value is wrong: which one (`nodes.faces.service`, `edges[2].when`), why.
    #[error("{}: `{field}`: {message}", path.display())]
    Invalid {
        path: PathBuf,
        field: String,
        message: String,
    },
    /// Edges that lead back to where they started, as the nodes they pass.
    #[error("{}: the edges make a cycle: {}", path.display(), cycle.join(" -> "))]
    Cycle { path: PathBuf, cycle: Vec<String> },
}

impl Spec {
    /// Reads and validates `path`.
    pub fn from_file(path: &Path) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_str(&text, path)
    }

    /// Parses and validates pipeline text; `path` is only used in messages.
    pub fn from_str(text: &str, path: &Path) -> Result<Self, SpecError> {
        let spec: Spec = toml::from_str(text).map_err(|e| SpecError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        spec.validate(path)?;
        Ok(spec)
    }

    /// The node named `id`.
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id() == id)
    }

    /// Checks what the types alone cannot; the store's side (services, functions, filters)
    /// is `work::pipeline::apply`'s.
    pub fn validate(&self, path: &Path) -> Result<(), SpecError> {
        let invalid = |field: String, message: String| SpecError::Invalid {
            path: path.to_path_buf(),
            field,
            message,
        };
        if !is_name(&self.name) {
            return Err(invalid(
                "name".into(),
                format!(
                    "`{}` is not a name (lowercase letters, digits and `-`, starting with a letter)",
                    self.name
                ),
            ));
        }
        self.validate_nodes(&invalid)?;
        self.validate_edges(&invalid)?;
        if let Some(cycle) = self.cycle() {
            return Err(SpecError::Cycle {
                path: path.to_path_buf(),
                cycle,
            });
        }
        Ok(())
    }

    fn validate_nodes(
        &self,
        invalid: &impl Fn(String, String) -> SpecError,
    ) -> Result<(), SpecError> {
        let mut seen = BTreeSet::new();
        for node in &self.nodes {
            let field = format!("nodes.{}", node.id());
            if !is_name(node.id()) {
                return Err(invalid(
                    "nodes.id".into(),
                    format!(
                        "`{}` is not a name (lowercase letters, digits and `-`)",
                        node.id()
                    ),
                ));
            }
            if !seen.insert(node.id()) {
                return Err(invalid(field, "is declared twice".into()));
            }
            match node {
                Node::Source { on, .. } if on.is_empty() => {
                    return Err(invalid(format!("{field}.on"), "names no event".into()));
                }
                Node::Function {
                    service, function, ..
                } if service.trim().is_empty() || function.trim().is_empty() => {
                    return Err(invalid(field, "names no service or function".into()));
                }
                Node::Task { task, .. } if !is_name(task) => {
                    return Err(invalid(
                        format!("{field}.task"),
                        format!("`{task}` is not a name"),
                    ));
                }
                Node::Dataset { dataset, .. } if dataset.trim().is_empty() => {
                    return Err(invalid(
                        format!("{field}.dataset"),
                        "must not be empty".into(),
                    ));
                }
                _ => {}
            }
        }
        let sources: Vec<&str> = self
            .nodes
            .iter()
            .filter(|n| matches!(n, Node::Source { .. }))
            .map(Node::id)
            .collect();
        if sources.len() != 1 {
            return Err(invalid(
                "nodes".into(),
                format!(
                    "a pipeline has one source node; this one has {} ({})",
                    sources.len(),
                    sources.join(", ")
                ),
            ));
        }
        Ok(())
    }

    fn validate_edges(
        &self,
        invalid: &impl Fn(String, String) -> SpecError,
    ) -> Result<(), SpecError> {
        let mut seen = BTreeSet::new();
        for (i, edge) in self.edges.iter().enumerate() {
            let field = format!("edges[{i}]");
            let named = |id: &str| {
                self.node(id).ok_or_else(|| {
                    invalid(
                        field.clone(),
                        format!(
                            "`{}` -> `{}`: there is no node `{id}` (the nodes: {})",
                            edge.from,
                            edge.to,
                            self.nodes
                                .iter()
                                .map(Node::id)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                })
            };
            let (from, to) = (named(&edge.from)?, named(&edge.to)?);
            if !seen.insert((&edge.from, &edge.to)) {
                return Err(invalid(
                    field,
                    format!("`{}` -> `{}` is declared twice", edge.from, edge.to),
                ));
            }
            if matches!(to, Node::Source { .. }) {
                return Err(invalid(
                    field,
                    format!("`{}` is the source: nothing leads into it", edge.to),
                ));
            }
            check_condition(from, &edge.when)
                .map_err(|message| invalid(format!("{field}.when"), message))?;
        }
        for node in &self.nodes {
            let reached =
                matches!(node, Node::Source { .. }) || self.edges.iter().any(|e| e.to == node.id());
            if !reached {
                return Err(invalid(
                    format!("nodes.{}", node.id()),
                    "no edge leads to it, so no item would ever reach it".into(),
                ));
            }
        }
        Ok(())
    }

    /// A cycle among the edges, as the ids it passes (the first repeated at the end).
    pub fn cycle(&self) -> Option<Vec<String>> {
        let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for e in &self.edges {
            next.entry(&e.from).or_default().push(&e.to);
        }
        // Depth first from every node; `path` is the way down, `done` what has no cycle below.
        fn walk<'a>(
            node: &'a str,
            next: &BTreeMap<&'a str, Vec<&'a str>>,
            path: &mut Vec<&'a str>,
            done: &mut BTreeSet<&'a str>,
        ) -> Option<Vec<String>> {
            if let Some(at) = path.iter().position(|n| *n == node) {
                let mut cycle: Vec<String> = path[at..].iter().map(|n| n.to_string()).collect();
                cycle.push(node.to_string());
                return Some(cycle);
            }
            if done.contains(node) {
                return None;
            }
            path.push(node);
            for to in next.get(node).into_iter().flatten() {
                if let Some(cycle) = walk(to, next, path, done) {
                    return Some(cycle);
                }
            }
            path.pop();
            done.insert(node);
            None
        }
        let mut done = BTreeSet::new();
        self.nodes
            .iter()
            .find_map(|n| walk(n.id(), &next, &mut Vec::new(), &mut done))
    }
}

/// Whether `when` means something after `from`: annotation conditions after a function,
/// an outcome after a task, nothing after a source or a dataset; ranges that can hold.
fn check_condition(from: &Node, when: &Condition) -> Result<(), String> {
    let on_annotations = when.on_annotations();
    match from {
        Node::Function { .. } if when.outcome.is_some() => {
            return Err(format!(
                "`outcome` follows a task; `{}` is a function (its conditions: min_count, max_count, labels, min_confidence, max_confidence)",
                from.id()
            ));
        }
        Node::Task { .. } if !on_annotations.is_empty() => {
            return Err(format!(
                "`{}` follows a function; `{}` is a task (its condition: outcome)",
                on_annotations.join("`, `"),
                from.id()
            ));
        }
        Node::Source { .. } | Node::Dataset { .. } if !when.is_always() => {
            return Err(format!(
                "`{}` is a {}: an edge from it has no condition (filter the source instead)",
                from.id(),
                from.kind()
            ));
        }
        _ => {}
    }
    for (name, value) in [
        ("min_confidence", when.min_confidence),
        ("max_confidence", when.max_confidence),
    ] {
        if let Some(v) = value.filter(|v| !(0.0..=1.0).contains(v)) {
            return Err(format!("`{name}` is {v}; a confidence is between 0 and 1"));
        }
    }
    if let (Some(min), Some(max)) = (when.min_confidence, when.max_confidence)
        && min > max
    {
        return Err(format!(
            "`min_confidence` {min} is above `max_confidence` {max}"
        ));
    }
    if let (Some(min), Some(max)) = (when.min_count, when.max_count)
        && min > max
    {
        return Err(format!("`min_count` {min} is above `max_count` {max}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_counts_the_annotations_it_names() {
        let faces = [("face", 0.95), ("face", 0.6), ("car", 0.7)];
        let always = Condition::default();
        assert!(always.holds(&[]) && always.holds(&faces));
        let uncertain = Condition {
            labels: vec!["face".into()],
            max_confidence: Some(0.8),
            ..Default::default()
        };
        assert!(uncertain.holds(&faces));
        assert!(!uncertain.holds(&[("face", 0.95)]));
        assert!(!uncertain.holds(&[("car", 0.5)]));
        let any = Condition {
            min_count: Some(1),
            ..Default::default()
        };
        assert!(any.holds(&faces) && !any.holds(&[]));
        let none = Condition {
            labels: vec!["face".into()],
            max_count: Some(0),
            min_count: Some(0),
            ..Default::default()
        };
        assert!(none.holds(&[("car", 0.9)]) && !none.holds(&faces));
    }

    #[test]
    fn an_outcome_condition_takes_only_its_outcome() {
        let completed = Condition {
            outcome: Some(Outcome::Completed),
            ..Default::default()
        };
        assert!(completed.holds_outcome(Outcome::Completed));
        assert!(!completed.holds_outcome(Outcome::Discarded));
        assert!(Condition::default().holds_outcome(Outcome::Discarded));
    }
}
