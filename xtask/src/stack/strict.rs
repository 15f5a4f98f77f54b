//! Unknown-field detection: a document compared with its typed object written back out.
//!
//! k8s-openapi, like the API server's lenient decoding, ignores fields it does not know, so a
//! misspelled `imagePullPolcy` would silently vanish. Comparing the YAML as written with the typed
//! object serialised again finds every such field, at any depth, with its path.

use std::fmt::{self, Write as _};

use serde::de::DeserializeOwned;
use serde_json::Value;

/// One place where the document and its typed reading disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mismatch {
    /// Where, e.g. `spec.template.spec.containers[0].imagePullPolcy`.
    pub(crate) path: String,
    /// What is wrong there.
    pub(crate) problem: Problem,
}

/// How a document and its typed reading disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Problem {
    /// The field is not part of the object's schema (misspelled, misplaced or made up).
    UnknownField,
    /// The value reads as something else than what was written.
    Changed { written: String, read: String },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.problem {
            Problem::UnknownField => write!(f, "{}: unknown field", self.path),
            Problem::Changed { written, read } => write!(
                f,
                "{}: the value {written} reads back as {read}; write it in that form",
                self.path
            ),
        }
    }
}

/// Lists every field of `written` that `read` (the typed object serialised again) lost or changed.
///
/// Differences that are only normal forms are not reported: a `null` (the same as leaving the
/// field out), fields the typed object adds (defaults of required fields, `apiVersion`), and a
/// number written where the schema keeps a string (a quantity such as `cpu: 1`).
pub(crate) fn compare(written: &Value, read: &Value) -> Vec<Mismatch> {
    let mut out = Vec::new();
    walk(written, read, &mut Vec::new(), &mut out);
    out
}

/// One step of a path into a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    Key(String),
    Index(usize),
}

/// Formats a path the way people write it: `a.b[0].c`, with keys that are not plain words quoted
/// (`metadata.labels["app.kubernetes.io/name"]`).
pub(crate) fn format_path(path: &[Segment]) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Key(key) if is_plain(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Key(key) => {
                let _ = write!(out, "[{key:?}]");
            }
            Segment::Index(index) => {
                let _ = write!(out, "[{index}]");
            }
        }
    }
    if out.is_empty() {
        out.push_str("(the document)");
    }
    out
}

fn is_plain(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn walk(written: &Value, read: &Value, path: &mut Vec<Segment>, out: &mut Vec<Mismatch>) {
    match (written, read) {
        (Value::Null, _) => {}
        (Value::Object(written), Value::Object(read)) => {
            for (key, value) in written {
                path.push(Segment::Key(key.clone()));
                match read.get(key) {
                    Some(read_value) => walk(value, read_value, path, out),
                    // A null is what leaving the field out means; it cannot be told apart
                    // from an unknown field, and carries nothing either way.
                    None if value.is_null() => {}
                    None => out.push(Mismatch {
                        path: format_path(path),
                        problem: Problem::UnknownField,
                    }),
                }
                path.pop();
            }
        }
        (Value::Array(written), Value::Array(read)) if written.len() == read.len() => {
            for (index, (written, read)) in written.iter().zip(read).enumerate() {
                path.push(Segment::Index(index));
                walk(written, read, path, out);
                path.pop();
            }
        }
        (Value::Number(number), Value::String(string)) if number.to_string() == *string => {}
        (written, read) if written == read => {}
        (written, read) => out.push(Mismatch {
            path: format_path(path),
            problem: Problem::Changed {
                written: written.to_string(),
                read: read.to_string(),
            },
        }),
    }
}

/// Every path at which a mapping has the key `key`, for errors that name a field but not where
/// it is (serde's `unknown field` from a `deny_unknown_fields` struct).
pub(crate) fn paths_of_key(document: &Value, key: &str) -> Vec<String> {
    fn search(value: &Value, key: &str, path: &mut Vec<Segment>, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (name, child) in map {
                    path.push(Segment::Key(name.clone()));
                    if name == key {
                        out.push(format_path(path));
                    }
                    search(child, key, path, out);
                    path.pop();
                }
            }
            Value::Array(items) => {
                for (index, child) in items.iter().enumerate() {
                    path.push(Segment::Index(index));
                    search(child, key, path, out);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    search(document, key, &mut Vec::new(), &mut out);
    out
}

/// Reads a whole YAML file into a `deny_unknown_fields` struct, naming the path of an unknown
/// field (which serde names but does not place) in the error.
pub(crate) fn read_struct<T: DeserializeOwned>(
    text: &str,
    label: &str,
    what: &str,
) -> anyhow::Result<T> {
    let document: Value = serde_saphyr::from_str(text)
        .map_err(|err| anyhow::anyhow!("{label}: {}", yaml_error(&err)))?;
    serde_json::from_value(document.clone()).map_err(|err| {
        let message = err.to_string();
        let located = unknown_field_name(&message)
            .and_then(|field| paths_of_key(&document, field).into_iter().next());
        match located {
            Some(path) => anyhow::anyhow!("{label}: {what}: {path}: unknown field ({message})"),
            None => match serde_saphyr::from_str::<T>(text) {
                Err(located) => anyhow::anyhow!("{label}: {what}: {}", yaml_error(&located)),
                Ok(_) => anyhow::anyhow!("{label}: {what}: {message}"),
            },
        }
    })
}

/// The field name in serde's "unknown field `x`, expected ..." message.
fn unknown_field_name(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split_once('`').map(|(name, _)| name)
}

/// A YAML reader's error on one line: its message and where it is, without the source snippet.
pub(crate) fn yaml_error(err: &serde_saphyr::Error) -> String {
    let message = err.without_snippet().to_string();
    let message = message.lines().map(str::trim).collect::<Vec<_>>().join(" ");
    match err.location() {
        Some(at) if !message.contains("line") => {
            format!("line {}, column {}: {message}", at.line(), at.column())
        }
        _ => message,
    }
}

/// Reads document number `index` of `text` (counting non-empty documents, as
/// `serde_saphyr::from_multiple` does) straight into `T`, for the line and column of a type error
/// that the detour through `serde_json::Value` cannot give. `None` when that reading succeeds or
/// the document cannot be found.
pub(crate) fn locate_type_error<T: DeserializeOwned>(text: &str, index: usize) -> Option<String> {
    let documents: Vec<String> = split_documents(text)
        .into_iter()
        .filter(|document| {
            serde_saphyr::from_str::<Value>(document).is_ok_and(|value| !value.is_null())
        })
        .collect();
    let document = documents.get(index)?;
    serde_saphyr::from_str::<T>(document)
        .err()
        .map(|err| yaml_error(&err))
}

/// Splits a YAML stream at its `---` lines. Each piece keeps the lines before it as empty lines,
/// so the reader's line numbers are those of the file.
fn split_documents(text: &str) -> Vec<String> {
    let mut documents = Vec::new();
    let mut current = String::new();
    for (number, line) in text.lines().enumerate() {
        let rest = line
            .strip_prefix("---")
            .filter(|rest| rest.is_empty() || rest.starts_with([' ', '\t']));
        if let Some(rest) = rest {
            documents.push(std::mem::take(&mut current));
            current = "\n".repeat(number);
            // Content after the marker on the same line belongs to the new document.
            current.push_str(rest.trim_start());
        } else {
            current.push_str(line);
        }
        current.push('\n');
    }
    documents.push(current);
    documents
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn report(written: &Value, read: &Value) -> Vec<String> {
        compare(written, read)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn identical_documents_agree() {
        let doc = json!({"a": {"b": [1, "x", {"c": true}]}, "d": null});
        assert!(compare(&doc, &doc).is_empty());
    }

    #[test]
    fn a_field_the_reading_lost_is_unknown_at_its_full_path() {
        let written = json!({"spec": {"containers": [{"name": "a"}, {"name": "b", "imagePullPolcy": "Never"}]}});
        let read = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(
            report(&written, &read),
            ["spec.containers[1].imagePullPolcy: unknown field"]
        );
    }

    #[test]
    fn every_lost_field_is_reported_and_keys_with_dots_are_quoted() {
        let written =
            json!({"top": 1, "metadata": {"labels": {"app.kubernetes.io/x": {"deep": 1}}}});
        let read = json!({"metadata": {"labels": {"app.kubernetes.io/x": {}}}});
        let mut reported = report(&written, &read);
        reported.sort();
        assert_eq!(
            reported,
            [
                "metadata.labels[\"app.kubernetes.io/x\"].deep: unknown field",
                "top: unknown field",
            ]
        );
    }

    #[test]
    fn normal_forms_are_not_differences() {
        for (written, read) in [
            // A null is an absent field.
            (json!({"a": null}), json!({})),
            (json!({"a": null}), json!({"a": "default"})),
            // Defaults the typed object adds.
            (json!({}), json!({"apiVersion": "v1", "name": ""})),
            // A number in a string-typed field (quantities).
            (json!({"cpu": 1}), json!({"cpu": "1"})),
            (json!({"cpu": 0.5}), json!({"cpu": "0.5"})),
            // Int-or-string keeps its form.
            (json!({"port": 8080}), json!({"port": 8080})),
            (json!({"port": "http"}), json!({"port": "http"})),
        ] {
            assert!(compare(&written, &read).is_empty(), "{written} vs {read}");
        }
    }

    #[test]
    fn changed_values_are_reported() {
        assert_eq!(
            report(&json!({"a": [1, 2]}), &json!({"a": [1]})),
            ["a: the value [1,2] reads back as [1]; write it in that form"]
        );
        assert_eq!(
            report(&json!({"a": "1"}), &json!({"a": 1})),
            ["a: the value \"1\" reads back as 1; write it in that form"]
        );
        assert_eq!(report(&json!({"a": 2}), &json!({"a": "1"})).len(), 1);
    }

    #[test]
    fn split_documents_keeps_the_files_line_numbers() {
        let pieces = split_documents("a: 1\n---\nb: 2\nc: 3\n--- \nd: 4\n");
        assert_eq!(pieces.len(), 3);
        assert_eq!(pieces[0], "a: 1\n");
        assert_eq!(pieces[1], "\n\nb: 2\nc: 3\n");
        assert_eq!(pieces[2].lines().position(|l| l == "d: 4"), Some(5));
    }

    #[test]
    fn paths_of_a_key_are_found_at_any_depth() {
        let doc = json!({"nodes": [{"role": "x", "extra": [{"listenAdress": 1}]}]});
        assert_eq!(
            paths_of_key(&doc, "listenAdress"),
            ["nodes[0].extra[0].listenAdress"]
        );
        assert!(paths_of_key(&doc, "missing").is_empty());
        assert_eq!(format_path(&[]), "(the document)");
    }
}
