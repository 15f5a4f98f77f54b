//! The dashboard web server. Its content arrives with the dashboard issue; until then it only
//! says so, instead of pretending to serve anything.

fn main() {
    eprintln!("web: the dashboard is not built yet; see the project's open issues");
    std::process::exit(1);
}
