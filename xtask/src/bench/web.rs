//! `cargo xtask bench web`: the release dashboard in front of the release API (over ephemeral,
//! seeded PostgreSQL and Redis), loaded by wrk scenario after scenario, plus the weight of the
//! dashboard page and its requests to other origins.

use std::fmt::Write as _;

use anyhow::bail;
use serde::Serialize;

use super::host::{free_port, target_dir};
use super::http::http_fetch;
use super::load::{Failures, Load, LoadRun};
use super::memory::{peak_rss_kib, reset_peak_rss};
use super::output::round;
use super::report::{Figures, ScenarioFigures};
use super::service::{
    Launch, Service, build_release, random_token, seeded_database, start_backing,
};
use super::{LoadArgs, LoadDefaults, Session};

/// The targets the figures are compared against in the printout (never enforced).
const TARGET_DASHBOARD_P99_MS: f64 = 15.0;
const TARGET_CONNECTIONS: u32 = 20;
const TARGET_PAGE_KB: f64 = 100.0;

/// What a page shows in place of a part the API did not deliver: a page carrying it was
/// rendered without the API, so its timings would not be the dashboard's.
const UNAVAILABLE_MARKER: &str = "class=\"unavailable\"";

/// Options of `cargo xtask bench web`.
pub(crate) type Args = LoadArgs<Defaults>;

/// The defaults of `cargo xtask bench web`.
#[derive(Debug)]
pub(crate) struct Defaults;

impl LoadDefaults for Defaults {
    const CONNECTIONS: &'static str = "20";
}

/// One way of loading the dashboard.
#[derive(Debug, Clone, Copy)]
struct Scenario {
    /// The name in the table and the JSON.
    name: &'static str,
    /// What it loads, for the progress line.
    what: &'static str,
    /// The path wrk requests.
    path: &'static str,
    /// Whether the answer is a page built from the API's answers (so must not say a part is
    /// unavailable).
    page: bool,
}

/// Every scenario, in the order run (and reported).
const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "dashboard",
        what: "GET / with the API warm (its answers cached)",
        path: "/",
        page: true,
    },
    Scenario {
        name: "dashboard_filtered",
        what: "GET / filtered by status and service",
        path: "/?status=failed&service=api",
        page: true,
    },
    Scenario {
        name: "deployment_detail",
        what: "GET /deployments/1",
        path: "/deployments/1",
        page: true,
    },
    Scenario {
        name: "healthz",
        what: "GET /healthz, which never calls the API",
        path: "/healthz",
        page: false,
    },
];

/// The JSON written to `--out`.
#[derive(Debug, Serialize)]
struct Report {
    /// The load's figures; their start-up is the dashboard's (the API is already up).
    #[serde(flatten)]
    figures: Figures,
    page: PageWeight,
}

/// What loading the dashboard costs a browser with an empty cache.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct PageWeight {
    /// Bodies of the page and of every same-origin resource it loads, in bytes.
    bytes: u64,
    /// Status lines and headers of those responses, in bytes.
    header_bytes: u64,
    /// The page first, then each resource once.
    resources: Vec<Resource>,
    /// References to other origins that a browser would load (or post to).
    external_requests: u64,
    /// Those references, for finding them.
    external_urls: Vec<String>,
}

/// One response of the page's weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Resource {
    /// Its path on the dashboard.
    url: String,
    /// Body bytes.
    bytes: u64,
    /// Status line and header bytes.
    header_bytes: u64,
}

/// Measures the release dashboard in front of a release API, then weighs its page; the JSON is
/// written only when no scenario had failed requests, the table is printed either way.
pub(super) fn run(session: &mut Session<'_>, args: &Args) -> anyhow::Result<()> {
    let bench = LoadRun::prepare(session.ctx, args, "web")?;
    let ctx = session.ctx;
    let ui = ctx.ui();
    let settings = bench.settings;

    build_release(session, &["api", "web"], &[])?;
    let release = target_dir(ctx).join("release");

    // Bound in the order they must outlive each other: locals drop in reverse order, so the
    // dashboard stops first, then the API, then the database and the servers.
    let (postgres, redis) = start_backing(session)?;
    let database = seeded_database(session, &postgres)?;
    let token = random_token()?;
    let api = Service::start_api(
        session,
        &release.join("api"),
        &bench.dir.join("web-api.log"),
        (&database.url, &redis.url()),
        &token,
    )?;
    ui.progress(format!(
        "API ready in {:.1} ms (log {})",
        api.ready_ms,
        api.log.display()
    ));
    let api_url = format!("http://127.0.0.1:{}", api.port);
    let web_port = free_port()?;
    let origin = format!("http://127.0.0.1:{web_port}");
    let mut web = Service::start(
        session,
        &Launch {
            label: "dashboard",
            binary: &release.join("web"),
            log: &bench.dir.join("web.log"),
            port: web_port,
            addr_var: "WEB_ADDR",
            probe: "/healthz",
            env: &[
                ("API_URL", api_url.as_str()),
                ("API_TOKEN", token.as_str()),
                ("WEB_ORIGIN", origin.as_str()),
                ("LOG_FORMAT", "json"),
            ],
        },
    )?;
    let startup = web.settle(ui, "dashboard")?;

    let mut figures = Vec::new();
    let mut failures = Failures::default();
    for scenario in SCENARIOS {
        settings.announce(ui, scenario.name, scenario.what);
        // One request first: it warms the API's cache for this page and proves the page
        // renders with the API's data, so the load measures the path it is named after.
        check_answer(&web, scenario)?;
        reset_peak_rss(web.pid())?;
        let report = session.wrk(
            &bench.wrk,
            &Load {
                url: format!("{origin}{}", scenario.path),
                script: None,
                env: Vec::new(),
                threads: settings.threads,
                connections: settings.connections,
                duration_s: settings.duration_s,
            },
        )?;
        let peak = peak_rss_kib(web.pid())?;
        if let Some(status) = web.exited()? {
            bail!(
                "the dashboard exited ({status}) during {}; see its log {}",
                scenario.name,
                web.log.display()
            );
        }
        failures.check(ui, scenario.name, report.verdict());
        figures.push(ScenarioFigures::new(scenario.name, &report, peak));
    }

    session.check_interrupt()?;
    let page = weigh_page(web.port, &origin)?;
    let report = Report {
        figures: Figures::new(settings, startup, figures)?,
        page,
    };
    report
        .figures
        .print(Some(&render_page(&report.page)), &target_lines(&report));
    failures.verdict(
        SCENARIOS.len(),
        "dashboard",
        &bench.out,
        &format!("the logs are in {}", bench.dir.display()),
    )?;
    bench.write(&report)
}

/// Requests `scenario`'s path once: it must answer 200, and a page must carry every part.
fn check_answer(web: &Service, scenario: &Scenario) -> anyhow::Result<()> {
    let fetched = http_fetch(web.port, scenario.path)?;
    if fetched.head.status != 200 {
        bail!(
            "{} measures GET {}, but it answered {}; see the dashboard log {}",
            scenario.name,
            scenario.path,
            fetched.head.status,
            web.log.display()
        );
    }
    if scenario.page && String::from_utf8_lossy(&fetched.body).contains(UNAVAILABLE_MARKER) {
        bail!(
            "{}: GET {} rendered with a part marked unavailable, so the dashboard is not \
             getting the API's answers; see the logs in {}",
            scenario.name,
            scenario.path,
            web.log.parent().map_or_else(
                || web.log.display().to_string(),
                |dir| dir.display().to_string()
            )
        );
    }
    Ok(())
}

/// Fetches `/` and every same-origin resource it loads (and those its stylesheets load), once
/// each, and collects the references to other origins.
fn weigh_page(port: u16, origin: &str) -> anyhow::Result<PageWeight> {
    let mut queue = vec!["/".to_owned()];
    let mut resources: Vec<Resource> = Vec::new();
    let mut external_urls: Vec<String> = Vec::new();
    while let Some(path) = queue.pop() {
        if resources.iter().any(|resource| resource.url == path) {
            continue;
        }
        let fetched = http_fetch(port, &path)?;
        if fetched.head.status != 200 {
            bail!(
                "GET {path} answered {} while weighing the page",
                fetched.head.status
            );
        }
        let body = String::from_utf8_lossy(&fetched.body);
        let content_type = fetched.head.header("content-type").unwrap_or_default();
        let found = if content_type.starts_with("text/html") {
            html_references(&body, &path, origin)
        } else if content_type.starts_with("text/css") {
            css_references(&body, &path, origin)
        } else {
            References::default()
        };
        resources.push(Resource {
            url: path,
            bytes: fetched.body.len() as u64,
            header_bytes: fetched.head_bytes as u64,
        });
        for url in found.external {
            if !external_urls.contains(&url) {
                external_urls.push(url);
            }
        }
        // In reverse, so that the pops fetch them in the order the page names them.
        queue.extend(found.same_origin.into_iter().rev());
    }
    Ok(PageWeight {
        bytes: resources.iter().map(|resource| resource.bytes).sum(),
        header_bytes: resources.iter().map(|resource| resource.header_bytes).sum(),
        external_requests: external_urls.len() as u64,
        external_urls,
        resources,
    })
}

/// The page weight for people to read: a total line, then one line per response.
fn render_page(page: &PageWeight) -> String {
    let mut text = format!(
        "page weight: {:.1} KB in {} responses (bodies; headers add {:.1} KB); external \
         requests: {}\n",
        kb(page.bytes),
        page.resources.len(),
        kb(page.header_bytes),
        page.external_requests
    );
    let width = page
        .resources
        .iter()
        .map(|resource| resource.url.len())
        .max()
        .unwrap_or(0);
    for resource in &page.resources {
        let _ = writeln!(text, "  {:<width$}  {:>8} B", resource.url, resource.bytes);
    }
    for url in &page.external_urls {
        let _ = writeln!(text, "  external: {url}");
    }
    text
}

/// Bytes as KiB with one decimal, the unit of the "100 KB" target.
fn kb(bytes: u64) -> f64 {
    round(bytes as f64 / 1024.0, 1)
}

/// The figures set against the targets, one line each, for people to read.
fn target_lines(report: &Report) -> Vec<String> {
    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    let mut lines = Vec::new();
    let settings = report.figures.settings;
    if let Some(dashboard) = report
        .figures
        .scenarios
        .iter()
        .find(|s| s.name == "dashboard")
    {
        let caveat = if settings.connections == TARGET_CONNECTIONS {
            String::new()
        } else {
            format!(
                " (measured at {} connections, not {TARGET_CONNECTIONS})",
                settings.connections
            )
        };
        lines.push(format!(
            "dashboard p99 < {TARGET_DASHBOARD_P99_MS} ms at {TARGET_CONNECTIONS} connections \
             (API warm): {:.3} ms, {}{caveat}",
            dashboard.p99_ms,
            verdict(dashboard.p99_ms < TARGET_DASHBOARD_P99_MS)
        ));
    }
    let page_kb = kb(report.page.bytes);
    lines.push(format!(
        "page weight < {TARGET_PAGE_KB} KB: {page_kb:.1} KB, {}",
        verdict(page_kb < TARGET_PAGE_KB)
    ));
    lines.push(format!(
        "external requests = 0: {}, {}",
        report.page.external_requests,
        verdict(report.page.external_requests == 0)
    ));
    lines
}

/// What a document references: paths on its own origin to fetch, and URLs on other origins.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct References {
    /// Paths (with any query) on the document's origin, each once, in document order.
    same_origin: Vec<String>,
    /// Absolute URLs on any other origin, each once, in document order.
    external: Vec<String>,
}

impl References {
    fn add(&mut self, reference: Reference, load: bool) {
        match reference {
            Reference::Local(path) if load && !self.same_origin.contains(&path) => {
                self.same_origin.push(path);
            }
            Reference::External(url) if !self.external.contains(&url) => self.external.push(url),
            _ => {}
        }
    }
}

/// Where one URL in a document points.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reference {
    /// A path on the document's origin.
    Local(String),
    /// An absolute URL on another origin.
    External(String),
    /// Nothing to fetch: a fragment, `data:`, `mailto:` and the like.
    Ignored,
}

/// The references of an HTML document at `base` (a path) on `origin` (`http://host:port`).
///
/// Loaded resources: `<link href>` (but not the navigational relations), `src` of `script`,
/// `img`, `source`, `iframe`, `video`, `audio`, `embed` and `input`. Counted as external besides
/// those: any `src`, any `action`. Links a person follows (`<a href>`) are neither.
fn html_references(html: &str, base: &str, origin: &str) -> References {
    const LOADING_SRC: [&str; 9] = [
        "script", "img", "source", "iframe", "video", "audio", "embed", "input", "track",
    ];
    const NAVIGATIONAL_RELS: [&str; 6] =
        ["canonical", "alternate", "prev", "next", "author", "help"];
    let mut references = References::default();
    for tag in tags(html) {
        for (name, value) in &tag.attributes {
            let reference = || classify(value, base, origin);
            match name.as_str() {
                "href" if tag.name == "link" => {
                    let rel = tag
                        .attribute("rel")
                        .unwrap_or_default()
                        .to_ascii_lowercase();
                    let navigational = rel
                        .split_ascii_whitespace()
                        .all(|rel| NAVIGATIONAL_RELS.contains(&rel))
                        && !rel.is_empty();
                    references.add(reference(), !navigational);
                }
                "src" => references.add(reference(), LOADING_SRC.contains(&tag.name.as_str())),
                "action" | "formaction" => references.add(reference(), false),
                _ => {}
            }
        }
    }
    references
}

/// The `url(...)` references of a stylesheet at `base` on `origin`: all of them are loads.
fn css_references(css: &str, base: &str, origin: &str) -> References {
    let css = strip_css_comments(css);
    let lower = css.to_ascii_lowercase();
    let mut references = References::default();
    let mut rest = 0;
    while let Some(found) = lower[rest..].find("url(") {
        let start = rest + found + "url(".len();
        let Some(length) = css[start..].find(')') else {
            break;
        };
        let value = css[start..start + length]
            .trim()
            .trim_matches(|c| c == '"' || c == '\'');
        references.add(classify(value, base, origin), true);
        rest = start + length;
    }
    references
}

fn strip_css_comments(css: &str) -> String {
    let mut text = String::with_capacity(css.len());
    let mut rest = css;
    while let Some(start) = rest.find("/*") {
        text.push_str(&rest[..start]);
        rest = rest[start + 2..]
            .find("*/")
            .map_or("", |end| &rest[start + 2 + end + 2..]);
    }
    text.push_str(rest);
    text
}

/// Where `raw`, found in a document at the path `base` on `origin`, points.
fn classify(raw: &str, base: &str, origin: &str) -> Reference {
    let url = raw.trim();
    let url = url.split_once('#').map_or(url, |(before, _)| before);
    if url.is_empty() {
        return Reference::Ignored;
    }
    let scheme_of_origin = origin
        .split_once("://")
        .map_or("http", |(scheme, _)| scheme);
    let absolute = if let Some(rest) = url.strip_prefix("//") {
        format!("{scheme_of_origin}://{rest}")
    } else if let Some((scheme, _)) = url.split_once(':')
        && !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
            return Reference::Ignored;
        }
        url.to_owned()
    } else {
        return Reference::Local(resolve(base, url));
    };
    let (scheme, rest) = absolute.split_once("://").unwrap_or(("", &absolute));
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let this = format!(
        "{}://{}",
        scheme.to_ascii_lowercase(),
        authority.to_ascii_lowercase()
    );
    if this == origin.to_ascii_lowercase() {
        Reference::Local(resolve("/", path))
    } else {
        Reference::External(absolute)
    }
}

/// `reference` (a path, absolute or relative, with any query) resolved against the directory
/// of `base`, with `.` and `..` segments removed.
fn resolve(base: &str, reference: &str) -> String {
    let (path, query) = reference
        .split_once('?')
        .map_or((reference, None), |(path, query)| (path, Some(query)));
    let joined = if path.starts_with('/') {
        path.to_owned()
    } else if path.is_empty() {
        base.split_once('?')
            .map_or(base, |(path, _)| path)
            .to_owned()
    } else {
        let base = base.split_once('?').map_or(base, |(path, _)| path);
        let directory = base.rfind('/').map_or("/", |slash| &base[..=slash]);
        format!("{directory}{path}")
    };
    let mut segments: Vec<&str> = Vec::new();
    let parts: Vec<&str> = joined.split('/').skip(1).collect();
    for (index, segment) in parts.iter().enumerate() {
        let last = index + 1 == parts.len();
        match *segment {
            "." if last => segments.push(""),
            "." => {}
            ".." => {
                segments.pop();
                if last {
                    segments.push("");
                }
            }
            segment => segments.push(segment),
        }
    }
    let mut resolved = format!("/{}", segments.join("/"));
    if let Some(query) = query {
        resolved.push('?');
        resolved.push_str(query);
    }
    resolved
}

/// One start tag: its lower-case name and its attributes (names lower-case, values decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tag {
    name: String,
    attributes: Vec<(String, String)>,
}

impl Tag {
    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// The start tags of `html`, skipping comments and the text of `script` and `style` elements.
/// Enough for pages we render ourselves; not a general HTML parser.
fn tags(html: &str) -> Vec<Tag> {
    let lower = html.to_ascii_lowercase();
    let mut tags = Vec::new();
    let mut at = 0;
    while let Some(found) = html[at..].find('<') {
        let start = at + found;
        let rest = &html[start + 1..];
        if rest.starts_with("!--") {
            at = lower[start..]
                .find("-->")
                .map_or(html.len(), |end| start + end + 3);
            continue;
        }
        let name_length = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        if name_length == 0 || !rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
            at = start + 1;
            continue;
        }
        let name = rest[..name_length].to_ascii_lowercase();
        let (attributes, consumed) = attributes(&rest[name_length..]);
        at = start + 1 + name_length + consumed;
        if name == "script" || name == "style" {
            let close = format!("</{name}");
            at = lower[at..].find(&close).map_or(html.len(), |end| at + end);
        }
        tags.push(Tag { name, attributes });
    }
    tags
}

/// The attributes at the start of `text` (just after a tag's name), up to the closing `>`, and
/// how many bytes they took.
fn attributes(text: &str) -> (Vec<(String, String)>, usize) {
    let bytes = text.as_bytes();
    let mut attributes = Vec::new();
    let mut at = 0;
    loop {
        while at < bytes.len() && (bytes[at].is_ascii_whitespace() || bytes[at] == b'/') {
            at += 1;
        }
        if at >= bytes.len() {
            return (attributes, at);
        }
        if bytes[at] == b'>' {
            return (attributes, at + 1);
        }
        let name_start = at;
        while at < bytes.len()
            && !matches!(bytes[at], b'=' | b'>' | b'/')
            && !bytes[at].is_ascii_whitespace()
        {
            at += 1;
        }
        let name = text[name_start..at].to_ascii_lowercase();
        while at < bytes.len() && bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        let mut value = String::new();
        if at < bytes.len() && bytes[at] == b'=' {
            at += 1;
            while at < bytes.len() && bytes[at].is_ascii_whitespace() {
                at += 1;
            }
            let value_end;
            if at < bytes.len() && matches!(bytes[at], b'"' | b'\'') {
                let quote = bytes[at];
                let start = at + 1;
                value_end = bytes[start..]
                    .iter()
                    .position(|byte| *byte == quote)
                    .map_or(bytes.len(), |end| start + end);
                value = decode_entities(&text[start..value_end]);
                at = (value_end + 1).min(bytes.len());
            } else {
                let start = at;
                while at < bytes.len() && bytes[at] != b'>' && !bytes[at].is_ascii_whitespace() {
                    at += 1;
                }
                value_end = at;
                value = decode_entities(&text[start..value_end]);
            }
        }
        if !name.is_empty() {
            attributes.push((name, value));
        } else if at < bytes.len() && bytes[at] != b'>' {
            at += 1;
        }
    }
}

/// The character references a template engine writes into attribute values.
fn decode_entities(value: &str) -> String {
    if !value.contains('&') {
        return value.to_owned();
    }
    [
        ("&quot;", "\""),
        ("&#34;", "\""),
        ("&#39;", "'"),
        ("&#x27;", "'"),
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&#x2f;", "/"),
        ("&#x2F;", "/"),
        ("&amp;", "&"),
        ("&#38;", "&"),
    ]
    .iter()
    .fold(value.to_owned(), |text, (entity, character)| {
        text.replace(entity, character)
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::bench::report::Startup;
    use crate::bench::testing::{keys, sample_figures};

    const ORIGIN: &str = "http://127.0.0.1:3000";

    fn refs(same_origin: &[&str], external: &[&str]) -> References {
        References {
            same_origin: same_origin.iter().map(|&s| s.to_owned()).collect(),
            external: external.iter().map(|&s| s.to_owned()).collect(),
        }
    }

    #[test]
    fn a_page_s_own_resources_are_found_once_in_order() {
        let html = r#"<!doctype html><html><head>
<link rel="icon" type="image/svg+xml" href="/static/icon.abc.svg">
<link rel=stylesheet href='/static/app.abc.css'>
<script src="/static/app.abc.js" defer></script>
<link rel="canonical" href="/">
</head><body><a href="/deployments/new">New</a>
<img src="/static/icon.abc.svg" alt="" width="24"><IMG SRC="logo.png">
<form method="post" action="/deployments"></form></body></html>"#;
        assert_eq!(
            html_references(html, "/", ORIGIN),
            refs(
                &[
                    "/static/icon.abc.svg",
                    "/static/app.abc.css",
                    "/static/app.abc.js",
                    "/logo.png"
                ],
                &[]
            )
        );
    }

    #[test]
    fn other_origins_are_external_whatever_the_url_form() {
        let html = r#"<link rel="stylesheet" href="https://cdn.example.com/x.css">
<script src="//cdn.example.com/x.js"></script>
<img src="http://127.0.0.1:3001/pixel.gif">
<img src="http://localhost:3000/same-machine-other-origin.png">
<form action="https://forms.example.net/post"></form>
<link rel="icon" href="http://127.0.0.1:3000/static/icon.svg">
<script src="//127.0.0.1:3000/static/app.js"></script>
<a href="https://docs.example.org/">followed by people, not loaded</a>
<img src="data:image/png;base64,AAAA"><a href="mailto:ops@example.com">mail</a>"#;
        assert_eq!(
            html_references(html, "/", ORIGIN),
            refs(
                &["/static/icon.svg", "/static/app.js"],
                &[
                    "https://cdn.example.com/x.css",
                    "http://cdn.example.com/x.js",
                    "http://127.0.0.1:3001/pixel.gif",
                    "http://localhost:3000/same-machine-other-origin.png",
                    "https://forms.example.net/post",
                ]
            )
        );
    }

    #[test]
    fn relative_urls_resolve_against_the_document() {
        let html = r#"<img src="a.png"><img src="./b/c.png?v=1&amp;w=2"><img src="../d.png">
<script src="e.js#frag"></script>"#;
        assert_eq!(
            html_references(html, "/deployments/1", ORIGIN),
            refs(
                &[
                    "/deployments/a.png",
                    "/deployments/b/c.png?v=1&w=2",
                    "/d.png",
                    "/deployments/e.js"
                ],
                &[]
            )
        );
        assert_eq!(resolve("/static/app.css", "../img/x.png"), "/img/x.png");
        assert_eq!(resolve("/", "../../x"), "/x");
        assert_eq!(resolve("/a/b?q=1", "c"), "/a/c");
    }

    #[test]
    fn comments_and_script_text_hold_no_references() {
        let html = r#"<!-- <img src="https://tracker.example.com/a.gif"> -->
<script>document.write('<img src="https://tracker.example.com/b.gif">')</script>
<style>p > a { color: red }</style><img src="/ok.png">"#;
        assert_eq!(html_references(html, "/", ORIGIN), refs(&["/ok.png"], &[]));
    }

    #[test]
    fn stylesheets_load_their_url_references() {
        let css = r#"/* url(https://commented.example.com/x.woff) */
@font-face { src: url("fonts/a.woff2") format("woff2"), URL( 'https://fonts.example.com/b.woff' ); }
.icon { background: url(/static/icon.svg) no-repeat; }
.inline { background: url("data:image/svg+xml;utf8,<svg/>"); }
.cdn { background-image: url(//images.example.com/c.png); }"#;
        assert_eq!(
            css_references(css, "/static/app.abc.css", ORIGIN),
            refs(
                &["/static/fonts/a.woff2", "/static/icon.svg"],
                &[
                    "https://fonts.example.com/b.woff",
                    "http://images.example.com/c.png"
                ]
            )
        );
    }

    #[test]
    fn attributes_are_read_quoted_unquoted_and_bare() {
        let tags = tags(r#"<input type=checkbox checked name="a b" value='x>y'/><br>"#);
        assert_eq!(tags.len(), 2);
        assert_eq!(tags[0].name, "input");
        assert_eq!(
            tags[0].attributes,
            [
                ("type".to_owned(), "checkbox".to_owned()),
                ("checked".to_owned(), String::new()),
                ("name".to_owned(), "a b".to_owned()),
                ("value".to_owned(), "x>y".to_owned()),
            ]
        );
        assert_eq!(tags[1].name, "br");
        // Unterminated input ends the scan instead of looping or panicking.
        assert_eq!(super::tags("<img src=\"/a").len(), 1);
        assert!(super::tags("a < b <").is_empty());
    }

    #[test]
    fn every_scenario_is_named_once_and_the_dashboard_comes_first() {
        let names: Vec<_> = SCENARIOS.iter().map(|s| s.name).collect();
        assert_eq!(names.iter().collect::<HashSet<_>>().len(), names.len());
        assert_eq!(
            names,
            [
                "dashboard",
                "dashboard_filtered",
                "deployment_detail",
                "healthz"
            ]
        );
        assert_eq!(SCENARIOS[0].path, "/");
    }

    fn report(connections: u32, p99_ms: f64, page_bytes: u64, external: u64) -> Report {
        Report {
            figures: sample_figures(
                connections,
                Startup {
                    ready_ms: 12.0,
                    idle_rss_mb: 8.0,
                },
                ScenarioFigures {
                    name: "dashboard".into(),
                    requests_per_sec: 5_000.0,
                    p50_ms: 2.0,
                    p99_ms,
                    max_ms: 20.0,
                    requests: 50_000,
                    errors: 0,
                    peak_rss_mb: 12.0,
                },
            ),
            page: PageWeight {
                bytes: page_bytes,
                header_bytes: 900,
                resources: vec![Resource {
                    url: "/".into(),
                    bytes: page_bytes,
                    header_bytes: 900,
                }],
                external_requests: external,
                external_urls: (0..external)
                    .map(|n| format!("https://cdn.example.com/{n}"))
                    .collect(),
            },
        }
    }

    #[test]
    fn targets_are_reported_as_met_or_missed() {
        assert_eq!(
            target_lines(&report(20, 6.5, 30_720, 0)),
            [
                "dashboard p99 < 15 ms at 20 connections (API warm): 6.500 ms, met",
                "page weight < 100 KB: 30.0 KB, met",
                "external requests = 0: 0, met",
            ]
        );
        let lines = target_lines(&report(50, 16.0, 102_400, 2));
        assert_eq!(
            lines[0],
            "dashboard p99 < 15 ms at 20 connections (API warm): 16.000 ms, MISSED \
             (measured at 50 connections, not 20)"
        );
        assert_eq!(lines[1], "page weight < 100 KB: 100.0 KB, MISSED");
        assert_eq!(lines[2], "external requests = 0: 2, MISSED");
    }

    #[test]
    fn the_json_has_the_documented_fields() {
        let json = serde_json::to_value(report(20, 6.5, 30_720, 1)).unwrap();
        assert_eq!(
            keys(&json),
            [
                "generated_at",
                "machine",
                "page",
                "peak_rss_mb",
                "scenarios",
                "settings",
                "startup"
            ]
        );
        assert_eq!(
            keys(&json["page"]),
            [
                "bytes",
                "external_requests",
                "external_urls",
                "header_bytes",
                "resources"
            ]
        );
        assert_eq!(
            keys(&json["page"]["resources"][0]),
            ["bytes", "header_bytes", "url"]
        );
        assert_eq!(json["page"]["external_requests"], 1);
    }

    #[test]
    fn the_page_printout_lists_every_response() {
        let text = render_page(&report(20, 6.5, 2048, 1).page);
        assert_eq!(
            text,
            "page weight: 2.0 KB in 1 responses (bodies; headers add 0.9 KB); external \
             requests: 1\n  /      2048 B\n  external: https://cdn.example.com/0\n"
        );
    }
}
