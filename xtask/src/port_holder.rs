//! Which process holds a TCP port, so that a taken port's failure names what to stop.
//!
//! Linux answers through `/proc`, with no program to install; macOS and the BSDs have no `/proc`,
//! so there `lsof` (which macOS ships) answers instead.

use std::path::{Path, PathBuf};

use crate::cmd::Cmd;
use crate::context::Context;

/// Who holds a port, as far as this user can see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Holder {
    /// A process we could identify.
    Process { pid: u32, name: String },
    /// A listening socket owned by another user's process that we may not inspect.
    Hidden { user: String },
    /// Nothing to go on (another network namespace, another user's process that `lsof` does not
    /// show, no `lsof`).
    Unknown,
}

/// Where the holder is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    /// `/proc/net/tcp{,6}` and `/proc/<pid>/fd`: Linux.
    Proc,
    /// `lsof`: macOS and the BSDs, which have no `/proc/net`.
    Lsof,
}

/// Finds the process listening on `port`: through `/proc` where it exists, else through `lsof`.
pub(crate) fn port_holder(ctx: &Context, port: u16) -> Holder {
    let method = if Path::new("/proc/net/tcp").exists() {
        Method::Proc
    } else {
        Method::Lsof
    };
    port_holder_via(ctx, port, method)
}

/// Finds the process listening on `port` the way `method` says; apart so that tests exercise the
/// `lsof` fallback on Linux too.
fn port_holder_via(ctx: &Context, port: u16, method: Method) -> Holder {
    match method {
        Method::Proc => proc_port_holder(port),
        Method::Lsof => lsof_port_holder(ctx, port),
    }
}

// --- /proc ----------------------------------------------------------------------------------

/// One TCP socket from `/proc/net/tcp` or `/proc/net/tcp6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcSocket {
    local_port: u16,
    /// The kernel's TCP state number; [`TCP_LISTEN`] for a listening socket.
    state: u8,
    uid: u32,
    /// The socket's inode: `/proc/<pid>/fd/*` links to `socket:[inode]` in its owners.
    inode: u64,
}

/// `TCP_LISTEN` in the kernel's `enum tcp_state`, as `/proc/net/tcp` prints it (`0A`).
const TCP_LISTEN: u8 = 0x0A;

/// Parses one line of `/proc/net/tcp{,6}` (`sl local rem st tx:rx tr:when retrnsmt uid timeout
/// inode ...`, addresses as `HEXADDR:HEXPORT`); `None` for the header or anything malformed.
fn parse_proc_net_line(line: &str) -> Option<ProcSocket> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 10 || !fields[0].ends_with(':') {
        return None;
    }
    let (_, port) = fields[1].rsplit_once(':')?;
    Some(ProcSocket {
        local_port: u16::from_str_radix(port, 16).ok()?,
        state: u8::from_str_radix(fields[3], 16).ok()?,
        uid: fields[7].parse().ok()?,
        inode: fields[9].parse().ok()?,
    })
}

/// The listening sockets on `port` in a `/proc/net/tcp{,6}` text, as (inode, uid).
fn listening_on(text: &str, port: u16) -> Vec<(u64, u32)> {
    text.lines()
        .filter_map(parse_proc_net_line)
        .filter(|socket| socket.local_port == port && socket.state == TCP_LISTEN)
        .map(|socket| (socket.inode, socket.uid))
        .collect()
}

/// Finds the process listening on `port` through `/proc`: socket inode from
/// `/proc/net/tcp{,6}`, then the process whose descriptors link to that socket.
fn proc_port_holder(port: u16) -> Holder {
    let mut sockets = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            sockets.extend(listening_on(&text, port));
        }
    }
    // Inode 0 is a socket whose owner has gone; nothing links to it.
    sockets.retain(|&(inode, _)| inode != 0);
    let Some(&(_, uid)) = sockets.first() else {
        return Holder::Unknown;
    };
    let targets: Vec<String> = sockets
        .iter()
        .map(|(inode, _)| format!("socket:[{inode}]"))
        .collect();
    match process_with_socket(&targets) {
        Some(pid) => Holder::Process {
            pid,
            name: process_name(pid),
        },
        None => Holder::Hidden {
            user: user_name(uid),
        },
    }
}

/// The lowest PID with a descriptor linking to one of `targets` (forked servers share one
/// socket; the lowest is usually the parent worth stopping).
fn process_with_socket(targets: &[String]) -> Option<u32> {
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids.into_iter().find(|pid| {
        // Other users' descriptors are unreadable without privileges: skip them quietly.
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            return false;
        };
        fds.filter_map(Result::ok).any(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|link| targets.iter().any(|target| link.as_os_str() == &**target))
        })
    })
}

/// The short command name of a process (`/proc/<pid>/comm`).
fn process_name(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map_or_else(|_| "unknown".into(), |name| name.trim_end().to_owned())
}

/// A user's login name, else the number.
fn user_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(user)) => user.name,
        _ => format!("uid {uid}"),
    }
}

// --- lsof -----------------------------------------------------------------------------------

/// Finds the process listening on `port` with `lsof`; without it, or when it lists nothing,
/// the holder is unknown.
fn lsof_port_holder(ctx: &Context, port: u16) -> Holder {
    // macOS keeps it in /usr/sbin, which is not on every PATH.
    let found = which::which("lsof").ok().or_else(|| {
        ["/usr/sbin/lsof", "/usr/bin/lsof"]
            .into_iter()
            .map(PathBuf::from)
            .find(|path| path.is_file())
    });
    let Some(lsof) = found else {
        return Holder::Unknown;
    };
    let output = Cmd::new(lsof)
        .args([
            "-nP",
            &format!("-iTCP:{port}"),
            "-sTCP:LISTEN",
            "-F",
            "pcuL",
        ])
        .output(ctx.ui());
    match output {
        // lsof exits with 1 both when it finds nothing and when it lists what it found but
        // could not read something else: what it printed decides.
        Ok(output) => parse_lsof_fields(&String::from_utf8_lossy(&output.stdout)),
        Err(_) => Holder::Unknown,
    }
}

/// One process set of `lsof -F` output.
#[derive(Debug, Default)]
struct LsofProcess {
    /// `None` when the `p` field is not a usable PID.
    pid: Option<u32>,
    command: Option<String>,
    uid: Option<u32>,
    login: Option<String>,
}

/// Who `lsof -F pcuL` output names: one field a line, a letter then its value (`p1234`,
/// `cnode`, `u501`, `Lalice`), each process set starting at its `p` line. The lowest PID wins,
/// as with `/proc`; a set without a usable PID still says whose listener it is. Unknown
/// letters (older lsof always adds `f`) and lines before the first `p` are skipped.
fn parse_lsof_fields(output: &str) -> Holder {
    let mut processes: Vec<LsofProcess> = Vec::new();
    for line in output.lines() {
        let mut chars = line.chars();
        let Some(field) = chars.next() else {
            continue;
        };
        let value = chars.as_str();
        if field == 'p' {
            processes.push(LsofProcess {
                pid: parse_pid(value),
                ..LsofProcess::default()
            });
            continue;
        }
        let Some(process) = processes.last_mut() else {
            continue;
        };
        match field {
            'c' => process.command = Some(value.to_owned()),
            'u' => process.uid = value.parse().ok(),
            'L' => process.login = Some(value.to_owned()),
            _ => {}
        }
    }
    let lowest = processes
        .iter()
        .filter_map(|process| Some((process.pid?, process)))
        .min_by_key(|&(pid, _)| pid);
    if let Some((pid, process)) = lowest {
        // The name is printed in doctor's output: no terminal control characters from it.
        let name: String = process
            .command
            .as_deref()
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        let name = if name.is_empty() {
            "unknown".to_owned()
        } else {
            name
        };
        return Holder::Process { pid, name };
    }
    let user = processes.iter().find_map(|process| {
        let login = process
            .login
            .as_deref()
            .filter(|login| !login.is_empty() && !login.chars().any(char::is_control));
        login
            .map(str::to_owned)
            .or_else(|| process.uid.map(|uid| format!("uid {uid}")))
    });
    match user {
        Some(user) => Holder::Hidden { user },
        None => Holder::Unknown,
    }
}

/// A PID that `kill` can be told: positive and within `pid_t` (0 and -1 mean groups to it).
fn parse_pid(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<i32>()
        .ok()
        .filter(|&pid| pid > 0)
        .and_then(|pid| u32::try_from(pid).ok())
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, TcpListener};

    use super::*;

    const TCP4: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 48213 1 0000000000000000 100 0 0 10 0
   1: 00000000:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1146 1 000000005311e760 100 0 0 10 0
   2: 0100007F:1F90 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000  1000        0 48999 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 49001 1 0000000000000000 20 4 30 10 -1
";

    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   999        0 77001 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000100007F:9C40 06 00000000:00000000 03:00000CF3 00000000     0        0 0 3 0000000000000000
";

    /// Captured from lsof 4.95 on Debian bookworm, run as root while a Python server and the
    /// child it forked both held one listening socket on [::]:48059:
    /// `lsof -nP -iTCP:48059 -sTCP:LISTEN -F pcuL`.
    const LSOF_FORKED_SERVER: &str = "p27938\ncpython3\nu0\nLroot\np27981\ncpython3\nu0\nLroot\n";

    #[test]
    fn proc_net_lines_give_port_state_uid_and_inode() {
        let cases = [
            (
                TCP4.lines().nth(1).unwrap(),
                Some((8080, TCP_LISTEN, 1000, 48213)),
            ),
            (
                TCP4.lines().nth(2).unwrap(),
                Some((3000, TCP_LISTEN, 0, 1146)),
            ),
            (
                TCP4.lines().nth(4).unwrap(),
                Some((50000, 0x01, 1000, 49001)),
            ),
            (
                TCP6.lines().nth(1).unwrap(),
                Some((8080, TCP_LISTEN, 999, 77001)),
            ),
            (TCP6.lines().nth(2).unwrap(), Some((8080, 0x06, 0, 0))),
            (TCP4.lines().next().unwrap(), None),
            (TCP6.lines().next().unwrap(), None),
            ("", None),
            (
                "   0: 0100007F:ZZZZ 00000000:0000 0A 0:0 0:0 0 1000 0 1 1",
                None,
            ),
        ];
        for (line, expected) in cases {
            let parsed = parse_proc_net_line(line)
                .map(|socket| (socket.local_port, socket.state, socket.uid, socket.inode));
            assert_eq!(parsed, expected, "{line}");
        }
    }

    #[test]
    fn only_listening_sockets_on_the_port_count() {
        // Port 8080 has one listener and one established connection; 50000 is only a client's.
        assert_eq!(listening_on(TCP4, 8080), [(48213, 1000)]);
        assert_eq!(listening_on(TCP4, 3000), [(1146, 0)]);
        assert_eq!(listening_on(TCP4, 50000), []);
        assert_eq!(listening_on(TCP6, 8080), [(77001, 999)]);
        assert_eq!(listening_on(TCP6, 3000), []);
    }

    #[test]
    fn lsof_fields_captured_from_a_forked_server_name_the_parent() {
        let parent = Holder::Process {
            pid: 27938,
            name: "python3".into(),
        };
        assert_eq!(parse_lsof_fields(LSOF_FORKED_SERVER), parent);
        // The lowest PID wins whatever the order lsof lists them in.
        let reversed = "p27981\ncpython3\nu0\nLroot\np27938\ncpython3\nu0\nLroot\n";
        assert_eq!(parse_lsof_fields(reversed), parent);
        // Older lsof (4.88 to 4.93.2, as macOS ships) adds a file descriptor field to each set.
        let with_fd = "p501\ncnode\nu501\nLalice\nf23\n";
        assert_eq!(
            parse_lsof_fields(with_fd),
            Holder::Process {
                pid: 501,
                name: "node".into()
            }
        );
        assert_eq!(
            parse_lsof_fields("p77\r\n"),
            Holder::Process {
                pid: 77,
                name: "unknown".into()
            }
        );
    }

    #[test]
    fn lsof_sets_without_a_usable_pid_name_the_user_or_nothing() {
        let hidden = |user: &str| Holder::Hidden { user: user.into() };
        let cases = [
            ("", Holder::Unknown),
            ("\n\n", Holder::Unknown),
            ("p\ncnode\nu501\nLalice\n", hidden("alice")),
            ("pabc\ncnode\nu501\n", hidden("uid 501")),
            ("p0\ncinit\nLroot\n", hidden("root")),
            ("p-1\nLroot\n", hidden("root")),
            ("p99999999999999999999999\nLroot\n", hidden("root")),
            ("p4294967295\nu0\n", hidden("uid 0")),
            ("p2147483648\nu0\n", hidden("uid 0")),
            ("p+12\nu7\n", hidden("uid 7")),
            ("pabc\ncnode\n", Holder::Unknown),
            ("p\nu99999999999999999999\n", Holder::Unknown),
            ("p\nL\u{1b}[2J\n", Holder::Unknown),
            // Fields before the first process set belong to none.
            ("cnode\nu501\nLalice\n", Holder::Unknown),
            (
                "lsof: WARNING: can't stat() fuse file system\n",
                Holder::Unknown,
            ),
        ];
        for (output, expected) in cases {
            assert_eq!(parse_lsof_fields(output), expected, "{output:?}");
        }
    }

    #[test]
    fn garbage_in_lsof_output_is_skipped_around_the_process_it_names() {
        let output = "garbage\n\u{0}\u{7f}\nx\np\np12x\np31\nc\u{1b}[31mevil\u{7}\nuNaN\nLbob\nzzz\n\u{fffd}\u{fffd}\n";
        assert_eq!(
            parse_lsof_fields(output),
            Holder::Process {
                pid: 31,
                name: "[31mevil".into()
            }
        );
        let huge = format!("p{}\nc{}\n", "9".repeat(10_000), "x".repeat(10_000));
        assert_eq!(parse_lsof_fields(&huge), Holder::Unknown);
        assert_eq!(
            parse_lsof_fields("p2147483647\ncmax\n"),
            Holder::Process {
                pid: 2_147_483_647,
                name: "max".into()
            }
        );
    }

    #[test]
    fn a_free_port_has_no_holder_by_either_method() {
        let ctx = Context::for_tests();
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        for method in [Method::Proc, Method::Lsof] {
            assert_eq!(
                port_holder_via(&ctx, port, method),
                Holder::Unknown,
                "{method:?}"
            );
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn port_holder_names_this_process_through_proc_and_through_lsof() {
        assert!(
            which::which("lsof").is_ok(),
            "lsof must be installed (`sudo apt-get install lsof`, or scripts/setup.sh) for the fallback to be tested"
        );
        let ctx = Context::for_tests();
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let ours = Holder::Process {
            pid: std::process::id(),
            name: std::fs::read_to_string("/proc/self/comm")
                .unwrap()
                .trim_end()
                .to_owned(),
        };
        assert_eq!(port_holder_via(&ctx, port, Method::Proc), ours);
        assert_eq!(port_holder_via(&ctx, port, Method::Lsof), ours);
        // /proc/net/tcp exists here, so the lookup that checks use is the /proc one.
        assert_eq!(port_holder(&ctx, port), ours);
    }
}
