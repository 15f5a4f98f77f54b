//! Bare HTTP/1.1 requests over std's TCP, no client library: `GET` reading only the response
//! head (the readiness probe), and any request reading the whole response, chunked bodies
//! included.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::Context as _;

/// The status and headers of an HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ResponseHead {
    pub(super) status: u16,
    headers: Vec<(String, String)>,
}

impl ResponseHead {
    /// The first header called `name` (any case).
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// `GET path` over a new connection, reading only the response head. Plain std, no client
/// library: the readiness poll sends hundreds of these and each must cost next to nothing.
pub(super) fn http_get(port: u16, path: &str) -> io::Result<ResponseHead> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_nodelay(true)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut received = Vec::new();
    let mut chunk = [0_u8; 1024];
    loop {
        if let Some(head) = parse_response_head(&received) {
            return Ok(head);
        }
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the connection closed before a complete response head",
            ));
        }
        received.extend_from_slice(&chunk[..read]);
    }
}

/// The head of the response in `received`, once all of it (up to the blank line) is there.
fn parse_response_head(received: &[u8]) -> Option<ResponseHead> {
    let end = received
        .windows(4)
        .position(|window| window == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&received[..end]);
    let mut lines = head.split("\r\n");
    // "HTTP/1.1 200 OK"; a head without a readable status counts as "no response yet".
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    Some(ResponseHead { status, headers })
}

/// A whole HTTP response, as fetched by [`http_fetch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Fetched {
    pub(super) head: ResponseHead,
    /// The bytes of the status line and headers on the wire, blank line included.
    pub(super) head_bytes: usize,
    /// The body, de-chunked when it came chunked.
    pub(super) body: Vec<u8>,
}

/// `GET path` over a new connection, reading the whole response (the server closes the
/// connection after it). Like [`http_get`], plain std: a handful of requests needs no client.
pub(super) fn http_fetch(port: u16, path: &str) -> anyhow::Result<Fetched> {
    http_send(port, "GET", path, &[], b"")
}

/// `method path` with extra `headers` and `body` over a new connection, reading the whole
/// response, as [`http_fetch`] does.
pub(super) fn http_send(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<Fetched> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let fetch = || -> io::Result<Vec<u8>> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_nodelay(true)?;
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
             Content-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            let _ = write!(request, "{name}: {value}\r\n");
        }
        request.push_str("\r\n");
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(body);
        stream.write_all(&bytes)?;
        let mut received = Vec::new();
        stream.read_to_end(&mut received)?;
        Ok(received)
    };
    let received = fetch().with_context(|| format!("{method} {path} on port {port}"))?;
    parse_response(&received)
        .with_context(|| format!("{method} {path} on port {port}: the response is not valid HTTP"))
}

/// A complete response read off a closed connection.
fn parse_response(received: &[u8]) -> Option<Fetched> {
    let head = parse_response_head(received)?;
    let head_bytes = received.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let raw_body = &received[head_bytes..];
    let chunked = head
        .header("transfer-encoding")
        .is_some_and(|coding| coding.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(raw_body)?
    } else {
        raw_body.to_vec()
    };
    Some(Fetched {
        head,
        head_bytes,
        body,
    })
}

/// The payload of a `Transfer-Encoding: chunked` body (sizes in hex, extensions ignored).
fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_line = std::str::from_utf8(&raw[..line_end]).ok()?;
        let size_hex = size_line.split(';').next()?.trim();
        let size = usize::from_str_radix(size_hex, 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_head_is_read_once_complete() {
        let response = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nX-Cache: HIT\r\n\
                         content-length: 2\r\n\r\n{}";
        let head = parse_response_head(response).unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(head.header("x-cache"), Some("HIT"));
        assert_eq!(head.header("Content-Type"), Some("application/json"));
        assert_eq!(head.header("location"), None);
        // Not all there yet, or not HTTP: no head.
        assert_eq!(parse_response_head(&response[..30]), None);
        assert_eq!(parse_response_head(b"garbage\r\n\r\n"), None);
    }

    #[test]
    fn a_whole_response_is_read_plain_or_chunked() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
        let fetched = parse_response(plain).unwrap();
        assert_eq!(fetched.head.status, 200);
        assert_eq!(fetched.head_bytes, plain.len() - 5);
        assert_eq!(fetched.body, b"hello");
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                        5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).unwrap().body, b"hello, world");
        let truncated = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel";
        assert_eq!(parse_response(truncated), None);
    }
}
