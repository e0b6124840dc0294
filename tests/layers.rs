//! Goal: dependencies point one way, `http → graphql → service → {domain,
//! store, events}`, `store → domain`, nothing back up, and the pure rules
//! touch no I/O crate. Method: read every source file under `src/` (its
//! code, not its comments or its unit tests) and list each `crate::<module>`
//! and each named outside crate it uses; fail on any that its layer may not.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A layer: the top-level module, the modules of this crate it may not
/// import, and the outside crates it may not use.
struct Layer {
    module: &'static str,
    not_modules: &'static [&'static str],
    not_crates: &'static [&'static str],
}

/// Every top-level module of the crate: what the bottom layers may not
/// import (a module's own name is never held against it).
const EVERY_MODULE: &[&str] = &[
    "domain",
    "store",
    "service",
    "events",
    "graphql",
    "http",
    "auth",
    "config",
    "metrics",
    "error",
    "scheduler",
    "startup",
    "webhooks",
];

/// The layers above the domain, named once.
const ABOVE_SERVICE: &[&str] = &["graphql", "http", "scheduler", "startup"];

const LAYERS: &[Layer] = &[
    Layer {
        module: "domain",
        not_modules: EVERY_MODULE,
        not_crates: &[
            "sea_orm",
            "entity",
            "sqlx",
            "async_graphql",
            "axum",
            "tokio",
            "hyper",
            "tower",
            "tower_http",
        ],
    },
    Layer {
        module: "store",
        not_modules: &[
            "service",
            "events",
            "graphql",
            "http",
            "auth",
            "metrics",
            "error",
            "scheduler",
            "startup",
        ],
        not_crates: &["async_graphql", "axum", "hyper", "tokio"],
    },
    Layer {
        module: "events",
        not_modules: &[
            "service",
            "graphql",
            "http",
            "auth",
            "metrics",
            "scheduler",
            "startup",
        ],
        not_crates: &["entity", "async_graphql", "axum", "hyper"],
    },
    Layer {
        module: "service",
        not_modules: ABOVE_SERVICE,
        not_crates: &[
            "entity",
            "sea_orm",
            "sqlx",
            "async_graphql",
            "axum",
            "hyper",
            "tower",
            "tower_http",
        ],
    },
    Layer {
        module: "webhooks",
        not_modules: &["service", "events", "graphql", "http", "scheduler", "startup"],
        not_crates: &["entity", "sea_orm", "sqlx", "async_graphql", "axum"],
    },
    Layer {
        module: "graphql",
        not_modules: &["http", "store", "scheduler", "startup"],
        not_crates: &["entity", "sea_orm", "sqlx", "axum", "hyper"],
    },
    Layer {
        module: "http",
        not_modules: &["store", "scheduler", "startup"],
        not_crates: &["entity", "sea_orm", "sqlx"],
    },
    Layer {
        module: "config",
        not_modules: EVERY_MODULE,
        not_crates: &["entity", "sea_orm", "sqlx", "async_graphql", "axum", "tokio"],
    },
    Layer {
        module: "metrics",
        not_modules: &["store", "service", "graphql", "http", "scheduler", "startup"],
        not_crates: &["entity", "sea_orm", "sqlx", "async_graphql", "axum"],
    },
    Layer {
        module: "auth",
        not_modules: &[
            "store",
            "service",
            "events",
            "graphql",
            "http",
            "scheduler",
            "startup",
        ],
        not_crates: &["entity", "sea_orm", "sqlx", "axum"],
    },
];

fn source_files(directory: &Path, into: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(directory).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            source_files(&path, into);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            into.push(path);
        }
    }
}

/// The file's code: comment lines dropped, unit tests (`#[cfg(test)]` to
/// the end, where this codebase keeps them) cut off.
fn code_of(text: &str) -> String {
    let mut code = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        code.push_str(line);
        code.push('\n');
    }
    code
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every `<name>::` path start in `code` (a name not preceded by an
/// identifier character or `::`), with `crate::<module>` reported as
/// `crate::<module>`.
fn paths_used(code: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    let chars: Vec<char> = code.chars().collect();
    let mut index = 0;
    while index < chars.len() {
        let starts_name = is_ident(chars[index])
            && (index == 0 || (!is_ident(chars[index - 1]) && chars[index - 1] != ':'));
        if !starts_name {
            index += 1;
            continue;
        }
        let start = index;
        while index < chars.len() && is_ident(chars[index]) {
            index += 1;
        }
        let name: String = chars[start..index].iter().collect();
        if chars.get(index) == Some(&':') && chars.get(index + 1) == Some(&':') {
            if name == "crate" {
                let module_start = index + 2;
                let mut end = module_start;
                while end < chars.len() && is_ident(chars[end]) {
                    end += 1;
                }
                let module: String = chars[module_start..end].iter().collect();
                used.insert(format!("crate::{module}"));
            } else {
                used.insert(name);
            }
        }
    }
    used
}

/// The top-level module a file belongs to (`src/service/spend.rs` and
/// `src/service.rs` are both `service`).
fn module_of(path: &Path) -> String {
    let relative = path.strip_prefix("src").expect("under src/");
    let first = relative.components().next().expect("a component");
    first
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_owned()
}

fn display(path: &Path) -> String {
    path.to_string_lossy().replace('\\', "/")
}

#[test]
fn imports_point_one_way() {
    let mut files = Vec::new();
    source_files(Path::new("src"), &mut files);
    files.sort();
    assert!(files.len() > 40, "found the sources ({} files)", files.len());
    let mut broken = Vec::new();
    for path in &files {
        let module = module_of(path);
        let text = std::fs::read_to_string(path).expect("a readable source file");
        let used = paths_used(&code_of(&text));
        let file = display(path);
        let Some(layer) = LAYERS.iter().find(|layer| layer.module == module) else {
            continue;
        };
        for forbidden in layer.not_modules.iter().filter(|forbidden| **forbidden != module) {
            if used.contains(&format!("crate::{forbidden}")) {
                broken.push(format!("{file}: {module} imports crate::{forbidden}"));
            }
        }
        for forbidden in layer.not_crates {
            if used.contains(*forbidden) {
                broken.push(format!("{file}: {module} uses {forbidden}"));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "imports against the layers:\n{}",
        broken.join("\n")
    );
}

/// The sibling files (not `mod.rs`) a file of a folder names through
/// `super::<file>`.
fn siblings_used(code: &str, siblings: &BTreeSet<String>) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for (at, _) in code.match_indices("super::") {
        let rest = &code[at + "super::".len()..];
        let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            group
                .split(',')
                .map(|name| name.trim().split("::").next().unwrap_or(""))
                .collect()
        } else {
            vec![rest.split(|c: char| !is_ident(c)).next().unwrap_or("")]
        };
        used.extend(
            names
                .into_iter()
                .filter(|name| siblings.contains(*name))
                .map(str::to_owned),
        );
    }
    used
}

/// No two files of one folder import each other, directly or round a
/// longer loop (`graphql/live.rs` and `graphql/subscription.rs` did).
#[test]
fn files_of_a_folder_do_not_import_each_other() {
    let mut files = Vec::new();
    source_files(Path::new("src"), &mut files);
    let mut folders: std::collections::BTreeMap<PathBuf, Vec<PathBuf>> = Default::default();
    for path in files {
        if path.file_name().is_some_and(|name| name != "mod.rs") {
            let folder = path.parent().expect("a folder").to_path_buf();
            folders.entry(folder).or_default().push(path);
        }
    }
    let mut cycles = Vec::new();
    for (folder, paths) in folders {
        let stem = |path: &PathBuf| path.file_stem().expect("a name").to_string_lossy().into_owned();
        let siblings: BTreeSet<String> = paths.iter().map(stem).collect();
        let edges: std::collections::BTreeMap<String, BTreeSet<String>> = paths
            .iter()
            .map(|path| {
                let code = code_of(&std::fs::read_to_string(path).expect("readable"));
                (stem(path), siblings_used(&code, &siblings))
            })
            .collect();
        // A file reaches itself again: depth-first from each file.
        for start in &siblings {
            let mut seen = BTreeSet::new();
            let mut stack: Vec<String> = edges[start].iter().cloned().collect();
            while let Some(next) = stack.pop() {
                if next == *start {
                    cycles.push(format!(
                        "{}: {start} imports itself round a loop",
                        display(&folder)
                    ));
                    break;
                }
                if seen.insert(next.clone()) {
                    stack.extend(edges[&next].iter().cloned());
                }
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "files importing each other:\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_sibling_scanner_follows_groups_and_paths() {
    let siblings: BTreeSet<String> = ["live", "start", "types"]
        .iter()
        .map(|name| (*name).to_owned())
        .collect();
    let code = code_of(
        "use super::start::StartSlot;\nuse super::{types::int, ledger};\nlet x = super::live::render();\n",
    );
    assert_eq!(siblings_used(&code, &siblings), siblings);
}

/// The scanner itself: it finds what a layer must not use, and ignores
/// comments, unit tests and names that merely end like a crate's.
#[test]
fn the_scanner_sees_imports_and_only_imports() {
    let code = code_of(
        "use sea_orm::{DbErr};\n\
         use crate::store::ledger;\n\
         // use axum::Router;\n\
         let x = wallet_entity::Model::default();\n\
         let y = crate::events::EventBus::default();\n\
         fn f() -> tokio::task::JoinHandle<()> { todo!() }\n\
         #[cfg(test)]\n\
         mod tests { use async_graphql::Schema; }\n",
    );
    let used = paths_used(&code);
    for expected in [
        "sea_orm",
        "crate::store",
        "crate::events",
        "tokio",
        "wallet_entity",
    ] {
        assert!(used.contains(expected), "{expected} in {used:?}");
    }
    for absent in ["axum", "async_graphql", "entity", "ledger", "Model", "task"] {
        assert!(!used.contains(absent), "{absent} not in {used:?}");
    }
}
