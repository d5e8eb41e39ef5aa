//! What `template.yaml` says about the functions' HTTP entry points, read as API Gateway reads
//! them: each HTTP API event's path (`{name}` one segment, `{proxy+}` one or more) and method
//! (`ANY` for all), and the functions that also have a URL of their own.

use std::path::PathBuf;

pub struct HttpRoutes {
    /// (binary, path, method) of every HTTP API event.
    pub events: Vec<(String, String, String)>,
    /// Binaries with a function URL, which takes every path.
    pub with_url: Vec<String>,
}

/// The workspace's root directory.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Reads the HTTP entry points of `template.yaml`.
pub fn http_routes() -> HttpRoutes {
    let template = std::fs::read_to_string(root().join("template.yaml")).expect("template.yaml");
    let mut routes = HttpRoutes {
        events: Vec::new(),
        with_url: Vec::new(),
    };
    let mut binary = "";
    for line in template.lines() {
        if let Some(rest) = line.split("Binary: ").nth(1) {
            binary = rest.split([' ', '}']).next().unwrap_or_default();
        }
        if line.trim_start().starts_with("FunctionUrlConfig:") {
            routes.with_url.push(binary.to_owned());
        }
        if line.contains("Type: HttpApi") {
            let field = |name: &str| {
                line.split(&format!("{name}: "))
                    .nth(1)
                    .and_then(|rest| rest.split([',', ' ']).next())
                    .unwrap_or_default()
                    .trim_matches('"')
                    .to_owned()
            };
            routes
                .events
                .push((binary.to_owned(), field("Path"), field("Method")));
        }
    }
    routes
}

/// Whether an HTTP API route path matches `path` (a concrete path, or a documented template).
pub fn route_matches(pattern: &str, path: &str) -> bool {
    let mut wanted = pattern.trim_start_matches('/').split('/');
    let mut given = path.trim_start_matches('/').split('/');
    loop {
        match (wanted.next(), given.next()) {
            (None, None) => return true,
            (Some("{proxy+}"), Some(segment)) => return !segment.is_empty(),
            (Some(w), Some(g)) if w.starts_with('{') && w.ends_with('}') => {
                if g.is_empty() {
                    return false;
                }
            }
            (Some(w), Some(g)) if w == g => {}
            _ => return false,
        }
    }
}

impl HttpRoutes {
    /// The function a request to the HTTP API's address reaches, if any.
    pub fn function_for(&self, method: &str, path: &str) -> Option<&str> {
        self.events
            .iter()
            .find(|(_, p, m)| {
                route_matches(p, path) && (m == "ANY" || m.eq_ignore_ascii_case(method))
            })
            .map(|(binary, _, _)| binary.as_str())
    }
}

/// Each binary's memory sizes in MB, as `template.yaml` gives the functions that run it (a
/// function without its own `MemorySize` has the one of `Globals`).
pub fn memory_sizes() -> std::collections::BTreeMap<String, std::collections::BTreeSet<u32>> {
    let template = std::fs::read_to_string(root().join("template.yaml")).expect("template.yaml");
    let size = |line: &str| {
        line.trim()
            .strip_prefix("MemorySize: ")
            .and_then(|v| v.trim().parse::<u32>().ok())
    };
    // `Globals` → `Function` → `MemorySize`, four spaces in.
    let global = template
        .lines()
        .find(|l| l.starts_with("    MemorySize: "))
        .and_then(size)
        .expect("a MemorySize in Globals");
    let mut sizes: std::collections::BTreeMap<_, std::collections::BTreeSet<u32>> =
        Default::default();
    let mut function: (Option<String>, Option<u32>) = (None, None);
    let mut close = |function: &mut (Option<String>, Option<u32>)| {
        if let (Some(binary), own) = std::mem::take(function) {
            sizes
                .entry(binary)
                .or_default()
                .insert(own.unwrap_or(global));
        }
    };
    for line in template.lines() {
        let resource = line.starts_with("  ") && !line.starts_with("   ") && line.ends_with(':');
        if resource || !line.starts_with(' ') {
            close(&mut function);
        }
        if let Some(rest) = line.split("Binary: ").nth(1) {
            function.0 = rest.split([' ', '}']).next().map(str::to_owned);
        }
        if line.starts_with("      MemorySize: ") {
            function.1 = size(line);
        }
    }
    close(&mut function);
    sizes
}

#[cfg(test)]
mod tests {
    use super::route_matches;

    #[test]
    fn paths_match_as_api_gateway_reads_them() {
        assert!(route_matches("/api/v1/jobs/{job_id}", "/api/v1/jobs/42"));
        assert!(!route_matches(
            "/api/v1/jobs/{job_id}",
            "/api/v1/jobs/42/retry"
        ));
        assert!(!route_matches("/api/v1/jobs/{job_id}", "/api/v1/jobs/"));
        assert!(route_matches(
            "/api/v1/admin/{proxy+}",
            "/api/v1/admin/jobs/1/retry"
        ));
        assert!(!route_matches("/api/v1/admin/{proxy+}", "/api/v1/admin"));
        assert!(route_matches("/", "/"));
    }
}
