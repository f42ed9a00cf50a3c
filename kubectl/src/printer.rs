//! Printing what the server returns: kubectl-style tables from server-side Tables, and
//! `yaml`, `json`, `name` output.

use serde_json::Value;

/// How to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Server-side table, default columns.
    Table,
    /// Server-side table with priority columns.
    Wide,
    /// YAML.
    Yaml,
    /// JSON.
    Json,
    /// `kind.group/name`.
    Name,
}

impl Output {
    /// Parse `-o`.
    pub fn parse(s: Option<&str>) -> anyhow::Result<Output> {
        Ok(match s {
            None | Some("") => Output::Table,
            Some("wide") => Output::Wide,
            Some("yaml") => Output::Yaml,
            Some("json") => Output::Json,
            Some("name") => Output::Name,
            Some(other) => anyhow::bail!("unable to match a printer suitable for the output format \"{other}\", allowed formats are: json,name,wide,yaml"),
        })
    }
}

/// Rows of a Table as strings, with the header, honouring wide and an optional namespace column.
pub fn table_lines(
    table: &Value,
    wide: bool,
    namespace_col: bool,
    header: bool,
) -> Vec<Vec<String>> {
    let cols: Vec<&Value> = table["columnDefinitions"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let show: Vec<usize> = cols
        .iter()
        .enumerate()
        .filter(|(_, c)| wide || c["priority"].as_i64().unwrap_or(0) == 0)
        .map(|(i, _)| i)
        .collect();
    let mut lines = Vec::new();
    if header {
        let mut h: Vec<String> = Vec::new();
        if namespace_col {
            h.push("NAMESPACE".into());
        }
        h.extend(
            show.iter()
                .map(|i| cols[*i]["name"].as_str().unwrap_or("").to_uppercase()),
        );
        lines.push(h);
    }
    for row in table["rows"].as_array().into_iter().flatten() {
        let cells = row["cells"].as_array().cloned().unwrap_or_default();
        let mut l: Vec<String> = Vec::new();
        if namespace_col {
            l.push(
                row.pointer("/object/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            );
        }
        for i in &show {
            l.push(match cells.get(*i) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(v) => v.to_string(),
            });
        }
        lines.push(l);
    }
    lines
}

/// Align columns with three spaces between them, as kubectl does.
pub fn align(lines: &[Vec<String>]) -> String {
    let n = lines.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            lines
                .iter()
                .map(|l| l.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for l in lines {
        let mut s = String::new();
        for (i, c) in l.iter().enumerate() {
            if i + 1 == l.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{:<w$}   ", c, w = widths[i]));
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    }
    out
}

/// `deployment.apps/web`.
pub fn name_of(kind: &str, group: &str, name: &str) -> String {
    if group.is_empty() {
        format!("{}/{name}", kind.to_lowercase())
    } else {
        format!("{}.{group}/{name}", kind.to_lowercase())
    }
}

/// Print objects as YAML or JSON (a `List` when there are several or a list was asked).
pub fn print_objects(objs: &[Value], out: Output, as_list: bool) -> anyhow::Result<String> {
    let v = if as_list {
        serde_json::json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": objs})
    } else {
        objs.first().cloned().unwrap_or(Value::Null)
    };
    Ok(match out {
        Output::Json => format!("{}\n", serde_json::to_string_pretty(&v)?),
        _ => serde_yaml::to_string(&v)?,
    })
}
