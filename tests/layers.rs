//! Goal: dependencies point one way, `http → graphql → service → {store,
//! events}`, `store → domain`, nothing back up; the rules (`domain`, its own
//! crate) touch no I/O crate; nothing reads the time but the clock; no two
//! modules of one folder import each other. Method: read every source file
//! of `src/` and `domain/src/` (its code: comment lines and `#[cfg(test)]`
//! items dropped), resolve every path it names (`crate::`, `super::`,
//! grouped `use a::{b, c}`) to a module, and fail on any that its layer may
//! not use. The compiler holds `domain` to its own `Cargo.toml`; a test here
//! holds that file to an allow-list.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A layer: the top-level module, the modules of this crate it may not
/// import, and the outside crates it may not use.
struct Layer {
    module: &'static str,
    not_modules: &'static [&'static str],
    not_crates: &'static [&'static str],
}

/// Every top-level module of the service crate. A module missing here, or
/// named here and gone from `src/`, fails the test: no layer is skipped
/// silently.
const EVERY_MODULE: &[&str] = &[
    "auth",
    "clock",
    "config",
    "error",
    "events",
    "graphql",
    "http",
    "metrics",
    "scheduler",
    "service",
    "startup",
    "store",
    "webhooks",
];

/// The layers above the service, named once.
const ABOVE_SERVICE: &[&str] = &["graphql", "http", "scheduler", "startup"];

/// Outside crates that read the database or speak HTTP.
const IO_CRATES: &[&str] = &["entity", "sea_orm", "sqlx", "async_graphql", "axum", "hyper"];

const LAYERS: &[Layer] = &[
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
            "webhooks",
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
            "webhooks",
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
        module: "scheduler",
        not_modules: &["http", "graphql", "store", "startup"],
        not_crates: &["entity", "sea_orm", "sqlx", "async_graphql", "axum"],
    },
    Layer {
        module: "config",
        not_modules: EVERY_MODULE,
        not_crates: &["entity", "sea_orm", "sqlx", "async_graphql", "axum", "tokio"],
    },
    Layer {
        module: "clock",
        not_modules: EVERY_MODULE,
        not_crates: IO_CRATES,
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
            "webhooks",
        ],
        not_crates: &["entity", "sea_orm", "sqlx", "axum"],
    },
    Layer {
        module: "error",
        not_modules: &[
            "service",
            "events",
            "graphql",
            "http",
            "auth",
            "scheduler",
            "startup",
            "webhooks",
        ],
        not_crates: &["entity", "sea_orm", "sqlx", "async_graphql", "axum", "hyper"],
    },
    Layer {
        module: "startup",
        not_modules: &[],
        not_crates: &["entity", "sqlx"],
    },
];

/// What the rules' crate may depend on: time, time zones, JSON values and
/// error derives. Nothing that does I/O or draws randomness.
const DOMAIN_DEPENDENCIES: &[&str] = &["chrono", "chrono-tz", "serde_json", "thiserror"];

/// Reads of the time that only the clock may make.
const TIME_READS: &[&str] = &["Utc::now", "Local::now", "SystemTime::now"];

/// One source file: where it is, the module path it defines within its
/// crate (`src/service/group_commit/batch.rs` is `service::group_commit::batch`,
/// a `mod.rs` its folder's), and its code.
struct Source {
    path: PathBuf,
    module: Vec<String>,
    code: String,
}

fn source_files(directory: &Path, into: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(directory).expect("a readable source folder") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            source_files(&path, into);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            into.push(path);
        }
    }
}

/// The crate rooted at `root`, less its binary (`main.rs` is a crate of its
/// own, wiring like `startup`) and less the files that a `#[cfg(test)] mod
/// name;` line makes test code (`domain/src/wallet/tests.rs`).
fn sources(root: &str) -> Vec<Source> {
    let mut paths = Vec::new();
    source_files(Path::new(root), &mut paths);
    paths.sort();
    let files: Vec<(PathBuf, Vec<String>, String)> = paths
        .into_iter()
        .filter(|path| {
            path.strip_prefix(root)
                .is_ok_and(|rest| rest != Path::new("main.rs"))
        })
        .map(|path| {
            let relative = path.strip_prefix(root).expect("under the root");
            let mut module: Vec<String> = relative
                .components()
                .map(|part| {
                    part.as_os_str()
                        .to_string_lossy()
                        .trim_end_matches(".rs")
                        .to_owned()
                })
                .collect();
            if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
                module.pop();
            }
            let text = std::fs::read_to_string(&path).expect("a readable source file");
            (path, module, text)
        })
        .collect();
    let test_modules: Vec<Vec<String>> = files
        .iter()
        .flat_map(|(_, module, text)| {
            test_modules_declared(text).into_iter().map(|name| {
                let mut path = module.clone();
                path.push(name);
                path
            })
        })
        .collect();
    files
        .into_iter()
        .filter(|(_, module, _)| !test_modules.iter().any(|test| module.starts_with(test)))
        .map(|(path, module, text)| Source {
            path,
            module,
            code: code_of(&text),
        })
        .collect()
}

/// The names of the modules that `text` declares as test code: a
/// `#[cfg(test)]` line followed by `mod name;` (on the same line or the next).
fn test_modules_declared(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let mut names = Vec::new();
    for (at, line) in lines.iter().enumerate() {
        let Some(rest) = line.strip_prefix("#[cfg(test)]") else {
            continue;
        };
        let item = match rest.trim() {
            "" => lines.get(at + 1).copied().unwrap_or_default(),
            same_line => same_line,
        };
        let item = item.strip_prefix("pub ").unwrap_or(item);
        if let Some(name) = item.strip_prefix("mod ").and_then(|rest| rest.strip_suffix(';')) {
            names.push(name.trim().to_owned());
        }
    }
    names
}

/// The file's code: comment lines dropped, and each item marked
/// `#[cfg(test)]` (a `mod tests;` line or a braced block) cut out, wherever
/// in the file it stands.
fn code_of(text: &str) -> String {
    let mut code = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") {
            continue;
        }
        if !trimmed.starts_with("#[cfg(test)]") {
            code.push_str(line);
            code.push('\n');
            continue;
        }
        // Skip the item: up to its `;` if it has no body, else to the
        // brace that closes the one it opens.
        let mut depth = 0i64;
        let mut opened = false;
        let mut rest = trimmed["#[cfg(test)]".len()..].to_owned();
        loop {
            for c in rest.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            let ended = if opened {
                depth <= 0
            } else {
                rest.trim_end().ends_with(';')
            };
            if ended {
                break;
            }
            match lines.next() {
                Some(next) => rest = next.to_owned(),
                None => break,
            }
        }
    }
    code
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn skip_space(chars: &[char], mut at: usize) -> usize {
    while at < chars.len() && chars[at].is_whitespace() {
        at += 1;
    }
    at
}

/// The paths of a use tree starting at `at` (`a::b`, `a::{b, c::d}`,
/// `{a, b}`), each as its segments, and where the tree ends.
fn use_tree(chars: &[char], at: usize) -> (Vec<Vec<String>>, usize) {
    let mut prefix = Vec::new();
    let mut at = skip_space(chars, at);
    loop {
        if chars.get(at) == Some(&'{') {
            let mut paths = Vec::new();
            at += 1;
            loop {
                at = skip_space(chars, at);
                match chars.get(at) {
                    None => return (paths, at),
                    Some('}') => return (paths, at + 1),
                    Some(',') => at += 1,
                    Some(_) => {
                        let (inner, end) = use_tree(chars, at);
                        if end == at {
                            return (paths, at + 1);
                        }
                        paths.extend(inner.into_iter().map(|tail| {
                            let mut path = prefix.clone();
                            path.extend(tail);
                            path
                        }));
                        at = end;
                    }
                }
            }
        }
        let start = at;
        while at < chars.len() && (is_ident(chars[at]) || (at == start && chars[at] == '$')) {
            at += 1;
        }
        if at == start {
            return (vec![prefix], at);
        }
        let segment: String = chars[start..at].iter().collect();
        prefix.push(segment.trim_start_matches('$').to_owned());
        if chars.get(at) == Some(&':') && chars.get(at + 1) == Some(&':') {
            at += 2;
        } else {
            return (vec![prefix], at);
        }
    }
}

/// Every path in `code` with at least one `::` (`tokio::spawn`,
/// `crate::{store, events}`, `super::super::ledger`), as its segments.
fn paths_in(code: &str) -> Vec<Vec<String>> {
    let chars: Vec<char> = code.chars().collect();
    let mut paths = Vec::new();
    let mut at = 0;
    while at < chars.len() {
        let starts = (is_ident(chars[at]) || chars[at] == '$')
            && (at == 0 || (!is_ident(chars[at - 1]) && chars[at - 1] != ':'));
        if !starts {
            at += 1;
            continue;
        }
        let (found, end) = use_tree(&chars, at);
        paths.extend(found.into_iter().filter(|path| path.len() > 1));
        at = end.max(at + 1);
    }
    paths
}

/// What a path names, seen from module `from`: a module path inside the
/// crate (`crate::`, `super::`, `self::` resolved) or an outside name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Named {
    Inside(Vec<String>),
    Outside(String),
}

fn resolve(path: &[String], from: &[String]) -> Named {
    match path[0].as_str() {
        "crate" => Named::Inside(path[1..].to_vec()),
        "self" => {
            let mut inside = from.to_vec();
            inside.extend_from_slice(&path[1..]);
            Named::Inside(inside)
        }
        "super" => {
            let mut base = from.to_vec();
            let mut rest = path;
            while rest.first().is_some_and(|segment| segment == "super") {
                base.pop();
                rest = &rest[1..];
            }
            base.extend_from_slice(rest);
            Named::Inside(base)
        }
        outside => Named::Outside(outside.to_owned()),
    }
}

fn named_by(source: &Source) -> BTreeSet<Named> {
    paths_in(&source.code)
        .iter()
        .map(|path| resolve(path, &source.module))
        .collect()
}

fn display(path: &Path) -> String {
    path.to_string_lossy().replace('\\', "/")
}

/// The layers named in `LAYERS` or `EVERY_MODULE` that `src/` no longer
/// has, and the modules it has that `EVERY_MODULE` does not name.
fn unknown_layers(present: &BTreeSet<String>) -> Vec<String> {
    let mut wrong = Vec::new();
    for named in EVERY_MODULE
        .iter()
        .chain(LAYERS.iter().map(|layer| &layer.module))
    {
        if !present.contains(*named) {
            wrong.push(format!("layer {named} names no module of src/"));
        }
    }
    for module in present {
        if !EVERY_MODULE.contains(&module.as_str()) {
            wrong.push(format!("module {module} is in no layer"));
        }
    }
    wrong.sort();
    wrong.dedup();
    wrong
}

/// The imports in `sources` (of the service crate) against `LAYERS`.
fn against_layers(sources: &[Source]) -> Vec<String> {
    let mut broken = Vec::new();
    for source in sources {
        let Some(module) = source.module.first() else {
            continue;
        };
        let Some(layer) = LAYERS.iter().find(|layer| layer.module == module) else {
            continue;
        };
        let file = display(&source.path);
        for named in named_by(source) {
            match named {
                Named::Inside(path) => {
                    if let Some(top) = path.first()
                        && top != module
                        && layer.not_modules.contains(&top.as_str())
                    {
                        broken.push(format!("{file}: {module} imports crate::{top}"));
                    }
                }
                Named::Outside(name) => {
                    if layer.not_crates.contains(&name.as_str()) {
                        broken.push(format!("{file}: {module} uses {name}"));
                    }
                }
            }
        }
    }
    broken.sort();
    broken.dedup();
    broken
}

#[test]
fn imports_point_one_way() {
    let sources = sources("src");
    assert!(sources.len() > 40, "found the sources ({} files)", sources.len());
    let present: BTreeSet<String> = sources
        .iter()
        .filter_map(|source| source.module.first().cloned())
        .collect();
    let mut broken = unknown_layers(&present);
    broken.extend(against_layers(&sources));
    assert!(
        broken.is_empty(),
        "imports against the layers:\n{}",
        broken.join("\n")
    );
}

/// Modules of one folder (files and subfolders alike, the crate roots
/// included) that import each other, directly or round a longer loop.
fn loops_in(sources: &[Source]) -> Vec<String> {
    // Edges between siblings: child `a` of folder `p` names `p::b`.
    let mut edges: BTreeMap<(Vec<String>, String), BTreeSet<String>> = BTreeMap::new();
    for source in sources {
        for depth in 0..source.module.len() {
            let parent = source.module[..depth].to_vec();
            let child = source.module[depth].clone();
            let entry = edges.entry((parent.clone(), child.clone())).or_default();
            for named in named_by(source) {
                if let Named::Inside(path) = named
                    && path.len() > depth
                    && path[..depth] == parent[..]
                    && path[depth] != child
                {
                    entry.insert(path[depth].clone());
                }
            }
        }
    }
    let mut loops = Vec::new();
    for ((parent, start), first) in &edges {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<String> = first.iter().cloned().collect();
        while let Some(next) = stack.pop() {
            if next == *start {
                loops.push(format!(
                    "{}::{start} imports itself round a loop",
                    parent.join("::")
                ));
                break;
            }
            if seen.insert(next.clone())
                && let Some(onward) = edges.get(&(parent.clone(), next))
            {
                stack.extend(onward.iter().cloned());
            }
        }
    }
    loops
}

#[test]
fn modules_of_a_folder_do_not_import_each_other() {
    let mut loops = loops_in(&sources("src"));
    loops.extend(loops_in(&sources("domain/src")));
    assert!(
        loops.is_empty(),
        "modules importing each other:\n{}",
        loops.join("\n")
    );
}

/// Every `Utc::now` (or other reading of the time) outside `src/clock.rs`.
fn time_reads(sources: &[Source]) -> Vec<String> {
    let mut found = Vec::new();
    for source in sources {
        if source.module == ["clock"] && source.path.starts_with("src") {
            continue;
        }
        for read in TIME_READS {
            if source.code.contains(read) {
                found.push(format!("{}: {read}", display(&source.path)));
            }
        }
    }
    found
}

#[test]
fn only_the_clock_reads_the_time() {
    let mut found = time_reads(&sources("src"));
    found.extend(time_reads(&sources("domain/src")));
    assert!(
        found.is_empty(),
        "time read outside the clock:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_rules_depend_on_nothing_that_does_io() {
    let manifest = std::fs::read_to_string("domain/Cargo.toml").expect("domain/Cargo.toml");
    let mut section = "";
    let mut outside = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
            continue;
        }
        let Some((name, _)) = line.split_once('=') else {
            continue;
        };
        let name = name.trim().trim_end_matches(".workspace");
        let dependencies = section.starts_with("[dependencies") || section.starts_with("[target");
        if dependencies && !line.starts_with('#') && !DOMAIN_DEPENDENCIES.contains(&name) {
            outside.push(name.to_owned());
        }
    }
    assert!(outside.is_empty(), "domain depends on {outside:?}");
    // And no source of the rules names an I/O crate or the service.
    for source in sources("domain/src") {
        for named in named_by(&source) {
            if let Named::Outside(name) = named {
                assert!(
                    !IO_CRATES.contains(&name.as_str())
                        && !["tokio", "reqwest", "getrandom", "protodesk_credits"].contains(&name.as_str()),
                    "{}: uses {name}",
                    display(&source.path)
                );
            }
        }
    }
}

fn source(module: &[&str], text: &str) -> Source {
    Source {
        path: PathBuf::from("src/example.rs"),
        module: module.iter().map(|segment| (*segment).to_owned()).collect(),
        code: code_of(text),
    }
}

fn inside(path: &[&str]) -> Named {
    Named::Inside(path.iter().map(|segment| (*segment).to_owned()).collect())
}

/// A file that a `#[cfg(test)] mod name;` line declares is test code: it
/// may import what the module's code must not (the wallet's tests build
/// outbox events), so it is left out of every check.
#[test]
fn files_declared_as_tests_are_left_out() {
    let declared = test_modules_declared(
        "mod real;\n#[cfg(test)]\nmod tests;\n#[cfg(test)] mod other;\n\
         #[cfg(test)]\nmod inline {\n}\n#[cfg(test)]\npub mod shared;\n",
    );
    assert_eq!(declared, ["tests", "other", "shared"]);
    let domain = sources("domain/src");
    assert!(domain.iter().any(|source| source.module == ["wallet"]));
    assert!(
        !domain.iter().any(|source| source
            .module
            .starts_with(&["wallet".to_owned(), "tests".to_owned()])),
        "domain/src/wallet/tests.rs is test code"
    );
}

/// The scanner keeps reading after a `#[cfg(test)] mod tests;` line (the
/// old one stopped there), and cuts only the test items.
#[test]
fn the_scanner_reads_past_test_items() {
    let file = source(
        &["store", "ledger"],
        "use sea_orm::DbErr;\n\
         #[cfg(test)]\n\
         mod tests;\n\
         use crate::http::Router;\n\
         // use crate::graphql::Schema;\n\
         #[cfg(test)]\n\
         mod inline {\n    use crate::service::Ledger;\n    fn f() { if true { } }\n}\n\
         fn after() -> tokio::task::JoinHandle<()> { todo!() }\n",
    );
    let named = named_by(&file);
    assert!(named.contains(&inside(&["http", "Router"])), "{named:?}");
    assert!(named.contains(&Named::Outside("tokio".into())), "{named:?}");
    assert!(named.contains(&Named::Outside("sea_orm".into())), "{named:?}");
    assert!(
        !named
            .iter()
            .any(|n| matches!(n, Named::Inside(p) if p[0] == "service" || p[0] == "graphql"))
    );
    let broken = against_layers(&[file]);
    assert!(
        broken.iter().any(|line| line.contains("imports crate::http")),
        "{broken:?}"
    );
    assert!(
        broken.iter().any(|line| line.contains("uses tokio")),
        "{broken:?}"
    );
}

/// Grouped imports and `super::super::` resolve to the modules they name.
#[test]
fn the_scanner_resolves_groups_and_supers() {
    let file = source(
        &["store", "batch", "read"],
        "use crate::{http::{Router, serve}, service};\n\
         use super::super::super::graphql::Schema;\n\
         use super::{postgres, sqlite::Read};\n\
         let x = $crate::events::EventBus::default();\n",
    );
    let named = named_by(&file);
    for expected in [
        inside(&["http", "Router"]),
        inside(&["http", "serve"]),
        inside(&["service"]),
        inside(&["graphql", "Schema"]),
        inside(&["store", "batch", "postgres"]),
        inside(&["store", "batch", "sqlite", "Read"]),
        inside(&["events", "EventBus", "default"]),
    ] {
        assert!(named.contains(&expected), "{expected:?} in {named:?}");
    }
    let broken = against_layers(&[file]);
    for layer in ["http", "service", "graphql", "events"] {
        assert!(
            broken
                .iter()
                .any(|line| line.ends_with(&format!("imports crate::{layer}"))),
            "{layer} in {broken:?}"
        );
    }
}

/// A layer whose module is gone, and a module in no layer, are both named.
#[test]
fn a_removed_or_unlisted_layer_fails() {
    let mut present: BTreeSet<String> = EVERY_MODULE.iter().map(|m| (*m).to_owned()).collect();
    assert!(unknown_layers(&present).is_empty());
    present.remove("events");
    present.insert("ledger".to_owned());
    assert_eq!(
        unknown_layers(&present),
        [
            "layer events names no module of src/",
            "module ledger is in no layer"
        ]
    );
}

/// Loops are found between files and between subfolders of one folder.
#[test]
fn the_loop_finder_sees_files_and_folders() {
    let sources = [
        source(&["graphql", "live"], "use super::subscription::Stream;\n"),
        source(&["graphql", "subscription"], "use crate::graphql::{live};\n"),
        source(
            &["service", "group_commit", "batch"],
            "use crate::service::spend::X;\n",
        ),
        source(&["service", "spend"], "use super::group_commit::Y;\n"),
        source(&["store", "ledger"], "use super::rows::Z;\n"),
    ];
    let loops = loops_in(&sources);
    assert_eq!(
        loops,
        [
            "graphql::live imports itself round a loop",
            "graphql::subscription imports itself round a loop",
            "service::group_commit imports itself round a loop",
            "service::spend imports itself round a loop",
        ]
    );
    let clocks = time_reads(&[
        source(&["clock"], "fn wall() { Utc::now() }"),
        source(&["webhooks"], "let now = chrono::Utc::now();"),
    ]);
    assert_eq!(clocks, ["src/example.rs: Utc::now"]);
}
