//! The layout as rules that fail when broken: no function crate depends on another (a Lambda
//! links the logic it runs and nothing else), and the shared crate's layers import only layers
//! below them, with no import cycle between its files.
//!
//! Dependencies come from `cargo metadata`. Imports come from a scan of `shared/src`: comments,
//! string literals and `#[cfg(test)]` items are removed, `crate::` and `super::` paths (use
//! trees included) are resolved to the file that defines them, following the re-exports of
//! `lib.rs` and of each folder's `mod.rs`. Glob imports and `crate as` aliases, which would hide
//! a dependency from the scan, are refused.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_owned()
}

fn metadata() -> Value {
    let output = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .arg("--manifest-path")
        .arg(root().join("Cargo.toml"))
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata is JSON")
}

#[test]
fn no_function_crate_depends_on_another_function_crate() {
    let metadata = metadata();
    let functions = root().join("functions");
    let packages = metadata["packages"].as_array().expect("packages");
    let ours: BTreeSet<&str> = packages
        .iter()
        .filter(|p| {
            p["manifest_path"]
                .as_str()
                .is_some_and(|m| Path::new(m).starts_with(&functions))
        })
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(ours.len() >= 10, "found {ours:?}");
    let hosts = ["image2model-local", "image2model-tests"];
    for package in packages {
        let name = package["name"].as_str().unwrap_or_default();
        if !ours.contains(name) {
            continue;
        }
        // The real package names, whatever a dependency is renamed to.
        let deps: Vec<&str> = package["dependencies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["name"].as_str())
            .collect();
        let wrong: Vec<&&str> = deps
            .iter()
            .filter(|d| ours.contains(**d) || hosts.contains(d))
            .collect();
        assert!(wrong.is_empty(), "{name} depends on {wrong:?}");
        assert!(deps.contains(&"image2model-shared"), "{name}");
    }
}

/// Every function crate that serves routes tests them itself, in-process: its
/// `src/route_tests.rs` sends requests through its router (`web::testing::call`), and every
/// `#[utoipa::path]` route of the crate is called there at least once.
#[test]
fn every_function_with_routes_tests_them_in_its_own_crate() {
    let mut untested = Vec::new();
    let Ok(crates) = std::fs::read_dir(root().join("functions")) else {
        panic!("functions/ is readable");
    };
    for entry in crates.flatten() {
        let src = entry.path().join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let code: String = files
            .iter()
            .filter(|f| !f.ends_with("route_tests.rs"))
            .map(|f| std::fs::read_to_string(f).expect("a source file"))
            .collect();
        let paths: Vec<String> = code
            .split("#[utoipa::path(")
            .skip(1)
            .filter_map(|attr| {
                let start = attr.find("path = \"")? + "path = \"".len();
                let end = attr[start..].find('"')?;
                Some(attr[start..start + end].to_owned())
            })
            .collect();
        if paths.is_empty() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(tests) = std::fs::read_to_string(src.join("route_tests.rs")) else {
            untested.push(format!("{name}: no src/route_tests.rs"));
            continue;
        };
        assert!(
            tests.contains("call(") && tests.contains("#[tokio::test]"),
            "{name}'s route tests call its router"
        );
        // A path is called when its fixed first segments after `/api/v1` (or the path itself,
        // for the few outside it) appear in a test.
        for path in paths {
            let fixed: String = path.split("/{").next().unwrap_or(&path).to_owned();
            if !tests.contains(&fixed) {
                untested.push(format!("{name}: {path}"));
            }
        }
    }
    assert!(
        untested.is_empty(),
        "routes their function crate does not call in-process:\n{}",
        untested.join("\n")
    );
}

/// The shared crate's top-level modules, lowest layer first. A module may import only modules
/// of a lower layer.
const LAYERS: &[&[&str]] = &[
    &[
        "domain",
        "host",
        "jwks",
        "metrics",
        "telemetry",
        "shutdown",
        "rate_window",
    ],
    &["validation", "ports", "jwt", "issued_tokens"],
    &["config", "builtin_generator"],
    &["keys", "adapters", "fal", "webhooks"],
    &["context"],
    &["app"],
    &["wiring"],
    &["web"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The code of a file without comments and without string and char literals (raw strings
/// included), so that neither can hide or fake an import.
fn strip(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let next = chars.get(i + 1).copied();
        match (chars[i], next) {
            ('/', Some('/')) => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            ('/', Some('*')) => {
                i += 2;
                while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                    i += 1;
                }
                i += 2;
            }
            // r"...", r#"..."#, br"...": no escapes, ended by the quote and as many hashes.
            ('r', Some('"' | '#')) if i == 0 || !ident(chars[i - 1]) || chars[i - 1] == 'b' => {
                let mut j = i + 1;
                let mut hashes = 0;
                while chars.get(j) == Some(&'#') {
                    hashes += 1;
                    j += 1;
                }
                if chars.get(j) != Some(&'"') {
                    out.push(chars[i]);
                    i += 1;
                    continue;
                }
                j += 1;
                loop {
                    match chars.get(j) {
                        None => break,
                        Some('"') if (1..=hashes).all(|h| chars.get(j + h) == Some(&'#')) => {
                            j += 1 + hashes;
                            break;
                        }
                        _ => j += 1,
                    }
                }
                out.push_str("\"\"");
                i = j;
            }
            ('"', _) => {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            // A char literal ('x' or '\x'), not a lifetime ('a).
            ('\'', Some('\\')) => {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            }
            ('\'', Some(_)) if chars.get(i + 2) == Some(&'\'') => i += 3,
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// `code` without its `#[cfg(test)]` items (test modules, inline or declared) and the names of
/// the modules declared test-only.
fn without_tests(code: &str) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut test_modules = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let item = rest[at + "#[cfg(test)]".len()..].trim_start();
        // The item ends at its first `;` unless a `{` comes first; then at the matching `}`.
        let semicolon = item.find(';').unwrap_or(item.len());
        let brace = item.find('{').unwrap_or(item.len());
        let end = if semicolon < brace {
            if let Some(name) = item.strip_prefix("mod ") {
                test_modules.push(name[..name.find(';').unwrap_or(0)].trim().to_owned());
            }
            semicolon + 1
        } else {
            let mut depth = 0;
            let mut end = item.len();
            for (i, c) in item.char_indices().skip(brace) {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = i + 1;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            end
        };
        rest = &item[end.min(item.len())..];
    }
    out.push_str(rest);
    (out, test_modules)
}

/// One path of a use tree: its module-like segments and the item (a type, `self`, `*`) that ended
/// it, if any.
#[derive(Debug, Clone, PartialEq)]
struct Named {
    path: Vec<String>,
    item: Option<String>,
}

/// The paths of a use tree (or a plain path) at the start of `text`: lowercase segments joined by
/// `::`, groups `{a::b, c}` expanded; a type, `self`, `*` or an alias ends a path.
fn use_tree(text: &str) -> Vec<Named> {
    fn parse(text: &str, prefix: Vec<String>) -> (Vec<Named>, usize) {
        let mut path = prefix;
        let mut at = 0;
        loop {
            let rest = &text[at..];
            let skipped = rest.len() - rest.trim_start().len();
            let rest = rest.trim_start();
            if let Some(group) = rest.strip_prefix('{') {
                let mut found = Vec::new();
                let mut used = at + skipped + 1;
                let mut inner = group;
                loop {
                    let (items, len) = parse(inner, path.clone());
                    found.extend(items);
                    let after = &inner[len..];
                    let trimmed = after.trim_start();
                    used += len + (after.len() - trimmed.len());
                    match trimmed.strip_prefix(',') {
                        Some(next) if !next.trim_start().starts_with('}') => {
                            used += 1;
                            inner = next;
                        }
                        Some(next) => {
                            used += 1 + (next.len() - next.trim_start().len()) + 1;
                            break;
                        }
                        None => {
                            used += usize::from(trimmed.starts_with('}'));
                            break;
                        }
                    }
                }
                return (found, used);
            }
            let word: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '*')
                .collect();
            at += skipped + word.len();
            let module_like = word.starts_with(|c: char| c.is_ascii_lowercase()) && word != "self";
            if !module_like {
                // A type, an item, `self` or `*`: the module path ends here. Skip the rest of
                // this item (`Type as Name`, `Trait::method`).
                let tail = &text[at..];
                let end = tail.find([',', '}', ';', '\n']).unwrap_or(tail.len());
                let item = (!word.is_empty()).then_some(word);
                return (vec![Named { path, item }], at + end);
            }
            path.push(word);
            match text[at..].strip_prefix("::") {
                Some(_) => at += 2,
                None => return (vec![Named { path, item: None }], at),
            }
        }
    }
    parse(text, Vec::new()).0
}

/// Every `crate::` and `super::` path of `code`, with `super` resolved against `module`.
fn named_paths(code: &str, module: &[String]) -> Vec<Named> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    for (start, prefix) in code
        .match_indices("crate::")
        .chain(code.match_indices("super::"))
    {
        let preceded = start > 0
            && (bytes[start - 1].is_ascii_alphanumeric()
                || matches!(bytes[start - 1], b'_' | b':'));
        if preceded {
            continue;
        }
        for named in use_tree(&code[start + prefix.len()..]) {
            let mut path = if prefix == "super::" {
                // `super` of module a::b is a; `super::super::` walks up once more each time.
                let mut base = module.to_vec();
                base.pop();
                base
            } else {
                Vec::new()
            };
            let mut segments = named.path.into_iter().peekable();
            while segments.peek().is_some_and(|s| s == "super") {
                segments.next();
                path.pop();
            }
            path.extend(segments);
            found.push(Named {
                path,
                item: named.item,
            });
        }
    }
    found
}

/// The module path of a file of `src`: `a/b.rs` and `a/b/mod.rs` are both `[a, b]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_owned());
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a directory") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A crate's modules: each module path with its code (tests removed).
struct Crate {
    modules: BTreeMap<Vec<String>, String>,
    /// What a module re-exports (`pub use child::Name` in a `mod.rs` or `lib.rs`): the module
    /// and name, to the module that defines it.
    reexports: BTreeMap<(Vec<String>, String), Vec<String>>,
}

impl Crate {
    fn read(src: &Path) -> Self {
        let mut files = Vec::new();
        rust_files(src, &mut files);
        let mut modules = BTreeMap::new();
        let mut test_only = BTreeSet::new();
        for file in &files {
            let module = module_of(src, file);
            let (code, tests) =
                without_tests(&strip(&std::fs::read_to_string(file).expect("readable")));
            for name in tests {
                let mut test_module = module.clone();
                test_module.push(name);
                test_only.insert(test_module);
            }
            modules.insert(module, code);
        }
        modules.retain(|m, _| !test_only.contains(m));
        let mut reexports = BTreeMap::new();
        for (module, code) in &modules {
            for statement in code.split("pub use ").skip(1) {
                for named in use_tree(statement) {
                    let Some(item) = &named.item else { continue };
                    let target = match named.path.split_first() {
                        Some((first, rest)) if first == "crate" => rest.to_vec(),
                        Some((first, rest)) if first == "super" => {
                            let mut parent = module.clone();
                            parent.pop();
                            parent.extend(rest.iter().cloned());
                            parent
                        }
                        Some(_) => {
                            let mut child = module.clone();
                            child.extend(named.path.iter().cloned());
                            child
                        }
                        None => continue,
                    };
                    reexports.insert((module.clone(), item.clone()), target);
                }
            }
        }
        Self { modules, reexports }
    }

    /// The module that defines what `named` names: its longest module prefix, followed through
    /// the re-exports of `lib.rs` and of a folder's root.
    fn resolve(&self, named: &Named) -> Option<Vec<String>> {
        let mut path = named.path.clone();
        for _ in 0..8 {
            let found = (0..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|p| self.modules.contains_key(p))?;
            let next = path.get(found.len()).or(named.item.as_ref());
            let Some(target) =
                next.and_then(|name| self.reexports.get(&(found.clone(), name.clone())))
            else {
                return Some(found);
            };
            // Go on from where the re-export points, with what follows the re-exported name.
            let mut redirected = target.clone();
            redirected.extend(path.iter().skip(found.len() + 1).cloned());
            if redirected == path {
                return Some(found);
            }
            path = redirected;
        }
        None
    }
}

#[test]
fn shared_layers_import_only_lower_layers_and_its_files_form_no_cycle() {
    let shared = Crate::read(&root().join("shared/src"));
    for layer in LAYERS.iter().flat_map(|l| l.iter()) {
        assert!(
            shared.modules.contains_key(&vec![(*layer).to_owned()]),
            "LAYERS names {layer}, which shared/src no longer has"
        );
    }
    let mut refused = Vec::new();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (module, code) in &shared.modules {
        if module.is_empty() {
            continue; // lib.rs declares the layers and re-exports three names.
        }
        let name = module.join("::");
        if code.contains("crate as ") {
            refused.push(format!("{name}: a `crate` alias hides what it uses"));
        }
        let top = &module[0];
        let Some(own_layer) = layer_of(top) else {
            refused.push(format!("{name} is in no layer"));
            continue;
        };
        for named in named_paths(code, module) {
            if named.item.as_deref() == Some("*") {
                refused.push(format!(
                    "{name}: a glob import of {:?} hides what it uses",
                    named.path
                ));
            }
            let Some(target) = shared.resolve(&named) else {
                refused.push(format!(
                    "{name}: re-exports of {named:?} go round in circles"
                ));
                continue;
            };
            let Some(target_top) = target.first() else {
                refused.push(format!(
                    "{name} names a crate root item it cannot resolve: {named:?}"
                ));
                continue;
            };
            if target_top != top && layer_of(target_top).is_none_or(|layer| layer >= own_layer) {
                refused.push(format!("{name} imports crate::{}", target.join("::")));
            }
            // A file naming its own folder's root (or an ancestor) names what it is part of.
            if target != *module && !module.starts_with(&target) {
                edges.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    assert!(
        refused.is_empty(),
        "imports against the layers:\n{}",
        refused.join("\n")
    );
    if let Some(cycle) = find_cycle(&edges) {
        let names: Vec<String> = cycle.iter().map(|m| m.join("::")).collect();
        panic!("import cycle: {}", names.join(" -> "));
    }
    assert!(
        edges.len() > 30,
        "the scan found the files' imports: {}",
        edges.len()
    );
}

/// A cycle among `edges`, by depth-first search.
fn find_cycle(edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Option<Vec<Vec<String>>> {
    fn visit(
        node: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        done: &mut BTreeMap<Vec<String>, bool>,
        stack: &mut Vec<Vec<String>>,
    ) -> Option<Vec<Vec<String>>> {
        match done.get(node) {
            Some(true) => return None,
            Some(false) => {
                let at = stack.iter().position(|n| n == node).unwrap_or(0);
                let mut cycle = stack[at..].to_vec();
                cycle.push(node.clone());
                return Some(cycle);
            }
            None => {}
        }
        done.insert(node.clone(), false);
        stack.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, done, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.clone(), true);
        None
    }
    let mut done = BTreeMap::new();
    edges
        .keys()
        .find_map(|node| visit(node, edges, &mut done, &mut Vec::new()))
}

fn paths(code: &str, module: &[&str]) -> Vec<String> {
    let module: Vec<String> = module.iter().map(|s| (*s).to_owned()).collect();
    let mut found: Vec<String> = named_paths(code, &module)
        .iter()
        .map(|n| {
            let mut parts = n.path.clone();
            parts.extend(n.item.clone());
            parts.join("::")
        })
        .collect();
    found.sort();
    found
}

#[test]
fn the_import_scan_sees_what_rust_resolves() {
    let (code, tests) = without_tests(&strip(concat!(
        "use super::fal_decision::{Answer, decide};\n",
        "use crate::domain::models; // crate::web\n",
        "let url = \"https://x/crate::web\"; use crate::keys::Caller;\n",
        "let raw = r#\"crate::web \"quoted\"\"#; let quote = '\"';\n",
        "use crate::{ports::{StoreError, storage::key_prefix}, fal};\n",
        "#[cfg(test)]\nmod tests {\n use crate::web::x; fn f() { if true { } }\n}\n",
        "/* crate::web */ use super::super::error::AppError;\n",
        "#[cfg(test)]\nmod testing;\n",
        "fn f<'a>(s: &'a str) -> crate::validation::Kind { my_crate::web::x() }\n",
        "fn g(e: crate::ApiError) {}\n",
    )));
    assert_eq!(tests, ["testing"]);
    assert_eq!(
        paths(&code, &["app", "work", "fal"]),
        [
            "ApiError",
            "app::error::AppError",
            "app::work::fal_decision::Answer",
            // A function reads like a module; the file that holds it is what resolves.
            "app::work::fal_decision::decide",
            "domain::models",
            "fal",
            "keys::Caller",
            "ports::StoreError",
            "ports::storage::key_prefix",
            "validation::Kind",
        ]
    );
}

#[test]
fn re_exports_resolve_to_the_file_that_defines_the_item() {
    let shared = Crate::read(&root().join("shared/src"));
    let resolve = |code: &str, module: &[&str]| -> Vec<String> {
        let module: Vec<String> = module.iter().map(|s| (*s).to_owned()).collect();
        named_paths(code, &module)
            .iter()
            .filter_map(|n| shared.resolve(n))
            .map(|m| m.join("::"))
            .collect()
    };
    assert_eq!(
        resolve("use crate::ApiError;", &["domain", "job"]),
        ["web::error"]
    );
    assert_eq!(
        resolve("use crate::domain::JobOptions;", &["domain", "models"]),
        ["domain::job"]
    );
    assert_eq!(
        resolve("use super::ids::JobId;", &["domain", "job"]),
        ["domain::ids"]
    );
    assert_eq!(
        resolve("use crate::app::work::Worker;", &["web", "x"]),
        ["app::work"]
    );
}

/// Literals that look like codes or settings but are neither: formats, FAL's queue states,
/// DynamoDB key prefixes, PNG chunks, SQLite pragmas and the like.
const NOT_DOCUMENTED: &[&str] = &[
    "AVIF",
    "BATCH",
    "CARGO_PKG_VERSION",
    "COMPLETED",
    "COUNT",
    "COUNTER",
    "DENY",
    "FILE",
    "HEIC",
    "IDEM",
    "IEND",
    "IHDR",
    "IN_PROGRESS",
    "IN_QUEUE",
    "JOBS",
    "NORMAL",
    "POST",
    "RIFF",
    "STATE",
    "TIFF",
    "WEBP",
    "WHDEL",
    "WHEP",
    "AWS_LAMBDA_FUNCTION_NAME",
];

#[test]
fn every_error_code_and_setting_is_in_the_readme() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let mut files = Vec::new();
    for dir in ["shared/src", "functions", "infra/local/src"] {
        rust_files(&root().join(dir), &mut files);
    }
    let mut missing = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable");
        // Without unit tests, but with string literals: the codes and names are literals.
        let text = match text.find("#[cfg(test)]\nmod tests") {
            Some(at) => &text[..at],
            None => &text,
        };
        for piece in text.split('"').skip(1).step_by(2) {
            let code_like = piece.len() >= 4
                && piece.starts_with(|c: char| c.is_ascii_uppercase())
                && piece
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if code_like
                && !NOT_DOCUMENTED.contains(&piece)
                && !readme.contains(&format!("`{piece}`"))
            {
                missing.insert(format!(
                    "{piece} ({})",
                    file.strip_prefix(root()).unwrap().display()
                ));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "error codes or settings the README does not name (in backticks):\n{}",
        missing.into_iter().collect::<Vec<_>>().join("\n")
    );
}

/// Every code a failed job can carry (`JobErrorCode`) is in the README's list, and said in words
/// by the web page: its `FAILURES` table has a sentence for each, so no person reads a bare
/// `FAL_BAD_OUTPUT`.
#[test]
fn every_job_failure_is_said_in_words_on_the_page() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let start = readme
        .find("Jobs that fail carry `error.code`")
        .expect("the README lists the job error codes");
    let paragraph = &readme[start..];
    let paragraph = &paragraph[..paragraph.find("\n\n").unwrap_or(paragraph.len())];
    let codes: BTreeSet<&str> = paragraph
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|piece| {
            piece.len() >= 4 && piece.chars().all(|c| c.is_ascii_uppercase() || c == '_')
        })
        // A setting named on the way (first cell of a settings table row) is no code.
        .filter(|piece| {
            !readme.lines().any(|line| {
                line.split('|')
                    .nth(1)
                    .is_some_and(|cell| cell.contains(&format!("`{piece}`")))
            })
        })
        .collect();
    // The README lists exactly the codes a job can fail with (one enum has them all).
    let enumerated: BTreeSet<&str> = image2model_shared::domain::JobErrorCode::ALL
        .iter()
        .map(|code| code.as_str())
        .collect();
    assert_eq!(
        codes, enumerated,
        "the README's job error codes and JobErrorCode differ"
    );
    let page = std::fs::read_to_string(root().join("infra/local/web/app.js")).expect("app.js");
    let table = &page[page
        .find("const FAILURES = {")
        .expect("app.js has FAILURES")..];
    let table = &table[..table.find("\n};").expect("FAILURES ends")];
    let said: BTreeSet<&str> = table
        .lines()
        .filter_map(|line| line.trim().split_once(": '").map(|(code, _)| code))
        .collect();
    let unsaid: Vec<_> = codes.difference(&said).collect();
    assert!(
        unsaid.is_empty(),
        "job error codes the page does not say in words: {unsaid:?}"
    );
}

/// Every dependency pinned in `[workspace.dependencies]` (ours aside) is named in the README's
/// "Dependencies and why" table, so that each one's reason is written down.
#[test]
fn every_dependency_is_explained_in_the_readme() {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml");
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let table = readme
        .split("## Dependencies and why")
        .nth(1)
        .expect("a \"Dependencies and why\" section");
    let pinned = manifest
        .split("[workspace.dependencies]")
        .nth(1)
        .expect("[workspace.dependencies]")
        .lines()
        .take_while(|line| !line.starts_with('['))
        .filter_map(|line| line.split_once('=').map(|(name, _)| name.trim()))
        .filter(|name| {
            !name.is_empty() && !name.starts_with('#') && !name.starts_with("image2model")
        });
    let missing: Vec<&str> = pinned
        .filter(|name| !table.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "dependencies the README does not explain: {missing:?}"
    );
}
